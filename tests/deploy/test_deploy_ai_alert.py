"""HikerAIFailing (deploy/prometheus/alerts.yml; the chart's PrometheusRule is kept the same by
test_deploy_chart_policies) fires on a failing model, and only then, replayed by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_support import PROMETHEUS

pytestmark = pytest.mark.deploy


def test_the_ai_failing_alert_fires_on_a_failing_model_only(promtool: str, tmp_path: Path) -> None:
    """A quarter of the model's calls failing for 5 minutes fires it; a model answering, or no
    calls at all (the responder off: 0/0), does not."""
    (rule,) = [
        r
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "HikerAIFailing"
    ]
    job = 'job="hiker-conversation"'
    fired = {**rule["annotations"], "summary": "33.33% of calls to the AI model fail"}
    # Every outcome's series starts at 0 (AIMetrics), as the services export them.
    series = [
        {"series": f'hiker_ai_requests_total{{{job}, outcome="ok"}}', "values": "0+10x40"},
        # Failing from 10m to 30m: 5 timeouts a minute beside 10 answers (a third fail).
        {
            "series": f'hiker_ai_requests_total{{{job}, outcome="timeout"}}',
            "values": "0x10 0+5x20 100x10",
        },
        {"series": f'hiker_ai_requests_total{{{job}, outcome="rejected"}}', "values": "0x40"},
        {"series": 'hiker_ai_requests_total{job="idle", outcome="ok"}', "values": "0x40"},
        {"series": 'hiker_ai_requests_total{job="idle", outcome="refused"}', "values": "0x40"},
    ]
    tests = {
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": t, "alertname": "HikerAIFailing", "exp_alerts": e}
                    for t, e in (
                        ("9m", []),
                        ("25m", [{"exp_labels": rule["labels"], "exp_annotations": fired}]),
                        ("45m", []),
                    )
                ],
            }
        ],
    }
    path = tmp_path / "ai-rules-test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
