"""The Prometheus reading every tier's assertions rest on."""

from __future__ import annotations

from tests.support import metric_value, samples


def test_metric_value_sums_the_samples_with_those_labels_and_defaults_to_zero() -> None:
    page = (
        "# HELP x_total x\n"
        'x_total{code="2",status="500"} 3.0\n'
        'x_total{code="4",status="429"} 1.0\n'
        "y_seconds_count 7.0\n"
    )
    assert metric_value(page, "x_total", status="500", code="2") == 3
    assert metric_value(page, "x_total", code="9") == 0
    assert metric_value(page, "y_seconds_count") == 7
    assert metric_value(page, "x_total") == 4, "no labels: every sample of the name"
    assert metric_value(page, "x_total", status="429") == 1, "some labels: those that have them"
    assert samples(page, "x_total", code="4") == [({"code": "4", "status": "429"}, 1.0)]
