"""HikerTemplatePaused, run by promtool on compose's alerts: it fires while a template is paused
or disabled, whichever api replica reports it, and stops once Meta approved it again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_support import PROMETHEUS

pytestmark = pytest.mark.deploy


def test_the_alert_fires_while_a_template_is_stopped_and_stops_once_approved(
    promtool: str, tmp_path: Path
) -> None:
    (rule,) = [
        r
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "HikerTemplatePaused"
    ]

    def series(instance: str, status: str, values: str) -> dict[str, str]:
        labels = f'name="order_update", language="en_US", status="{status}"'
        name = f'hiker_template_status{{job="hiker-api", instance="{instance}", {labels}}}'
        return {"series": name, "values": values}

    # Two api replicas report the template; paused from 5m to 20m, approved before and after.
    paused = "_x4 1x15 _x10"
    input_series = [
        series("a", "APPROVED", "1x4 _x15 1x10"),
        series("a", "PAUSED", paused),
        series("b", "PAUSED", paused),
    ]
    fired = [
        {
            "exp_labels": {
                **rule["labels"],
                "name": "order_update",
                "language": "en_US",
                "status": "PAUSED",
            },
            "exp_annotations": {
                "summary": "Template order_update (en_US) is PAUSED",
                "description": " ".join(rule["annotations"]["description"].split()),
            },
        }
    ]
    tests = {
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": [
                    {"eval_time": t, "alertname": "HikerTemplatePaused", "exp_alerts": e}
                    for t, e in (("3m", []), ("10m", fired), ("25m", []))
                ],
            }
        ],
    }
    path = tmp_path / "template-alert-test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
