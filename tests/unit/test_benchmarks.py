"""The benchmark's arithmetic: what the performance figures are computed with."""

from __future__ import annotations

import pytest
from benchmarks.load import histogram_quantile, pct
from benchmarks.report import change, median_result, render
from prometheus_client import CollectorRegistry, Histogram, generate_latest


def page(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_a_histogram_quantile_covers_only_what_was_observed_between_two_scrapes() -> None:
    registry = CollectorRegistry()
    latency = Histogram("x_seconds", "x", buckets=(0.1, 0.2, 0.4), registry=registry)
    for _ in range(100):
        latency.observe(0.05)  # before the window: must not count
    before = page(registry)
    for value in (0.15, 0.15, 0.3, 0.3):
        latency.observe(value)
    after = page(registry)
    # Two of four in (0.1, 0.2], two in (0.2, 0.4]: the median is the top of the first bucket.
    assert histogram_quantile(after, before, "x_seconds", 0.5) == 0.2
    assert histogram_quantile(after, before, "x_seconds", 0.75) == pytest.approx(0.3)
    assert histogram_quantile(before, before, "x_seconds", 0.5) is None


def test_percentiles_of_plain_values() -> None:
    assert pct([], 0.5) is None
    assert pct([3.0, 1.0, 2.0], 0.5) == 2.0
    assert pct(range(100), 0.99) == 99


def test_medians_are_taken_figure_by_figure_and_failed_runs_are_left_out() -> None:
    runs = [
        {"figures": {"cpu": 1.0, "p50 / p99": (10, 90)}},
        {"error": "RuntimeError: wrk failed"},
        {"figures": {"cpu": 3.0, "p50 / p99": (30, 70)}},
        {"figures": {"cpu": 2.0, "p50 / p99": (20, 80)}},
    ]
    assert median_result(runs) == {"figures": {"cpu": 2.0, "p50 / p99": [20, 80]}}


def test_the_report_compares_each_figure_with_the_baseline() -> None:
    side = {"scenarios": {"cost": {"figures": {"ms per reply": 1.5}}}, "runs": {"cost": 3}}
    results = {
        "started": "now",
        "quick": True,
        "seconds": 60.0,
        "machine": {"cpus": 2, "load_at_start": 1.0, "load_at_end": 1.5, "python": "3.11"},
        "sides": {
            "current": {"label": "abc", **side},
            "baseline": {"label": "old", "scenarios": {"cost": {"figures": {"ms per reply": 2.0}}}},
        },
    }
    report = render(results)
    assert "## cost (median of 3 runs)" in report
    assert "| ms per reply | 2 | 1.5 | -25 % |" in report
    assert change((10, 100), (5, 100)) == "-50 % / +0 %"
