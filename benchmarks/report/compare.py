"""The before/after table of ``--baseline``: a few headline figures per scenario, medians, with
the range of the runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.report.markdown import change, table, with_range

Getter = Callable[[dict[str, Any]], Any]


def _at(*path: Any) -> Getter:
    def get(result: dict[str, Any]) -> Any:
        value: Any = result
        for step in path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and len(value) > step else None
            elif isinstance(value, dict):
                value = value.get(step)
            else:
                return None
        return value

    return get


def _cost_headlines(result: dict[str, Any]) -> list[tuple[str, Getter]]:
    rows: list[tuple[str, Getter]] = []
    for i, r in enumerate(result.get("rates", [])):
        rate = f"{r['rate']:,.0f}/s"
        rows.append(
            (f"pipeline CPU ms per reply at {rate}", _at("rates", i, "pipeline", "ms_per_reply"))
        )
        rows.append((f"e2e p99 ms at {rate}", _at("rates", i, "e2e_p99_ms")))
        rows.append((f"replies lost at {rate}", _at("rates", i, "lost")))
    return rows


_HEADLINES: dict[str, Callable[[dict[str, Any]], list[tuple[str, Getter]]]] = {
    "cost": _cost_headlines,
    "replies": lambda _: [
        ("Hiker replies/s", _at("systems", "hiker", "replies_per_s")),
        ("Hiker CPU ms per reply", _at("systems", "hiker", "system_ms_per_reply")),
        ("Hiker replies lost", _at("systems", "hiker", "lost")),
    ],
    "ingress": lambda _: [
        ("whole pipeline, 1-message POST/s", _at("throughput", 0, "posts_per_s")),
        ("ingress + broker, 1-message POST/s", _at("alone", 0, "posts_per_s")),
        ("whole pipeline at 1,000/s: webhook p99 ms", _at("fixed_rate", "p99_ms")),
    ],
    "e2e": lambda _: [
        ("e2e p50 ms", _at("p50_ms")),
        ("e2e p99 ms", _at("p99_ms")),
        ("replies lost", _at("lost")),
    ],
    "timers": lambda _: [
        ("fired/s while due", _at("fired_per_s_while_due")),
        ("lateness p99 ms", _at("lateness_p99_ms")),
        ("at half the rate: lateness p99 ms", _at("slower", "lateness_p99_ms")),
    ],
    "sender": lambda _: [
        ("unpaced sends/s", _at("unpaced", "sends_per_s")),
        ("unpaced CPU µs per send", _at("unpaced", "cpu_us_per_message")),
        ("paced 80/s deviation %", _at("paced_80", "deviation_pct")),
    ],
    "conversation": lambda _: [
        ("messages/s", _at("messages_per_s")),
        ("CPU µs per message", _at("cpu_us_per_message")),
    ],
}


def comparison(results: dict[str, Any]) -> list[str]:
    before = results["baseline"]["scenarios"]
    after = results["scenarios"]
    runs_before = results.get("baseline_runs", {})
    runs_after = results.get("current_runs", {})
    rows = []
    for name, headlines in _HEADLINES.items():
        if name not in before or name not in after:
            continue
        for label, get in headlines(after[name]):
            was, now = get(before[name]), get(after[name])
            rows.append(
                [
                    name,
                    label,
                    with_range(was, [get(r) for r in runs_before.get(name, [])]),
                    with_range(now, [get(r) for r in runs_after.get(name, [])]),
                    change(was, now),
                ]
            )
    if not rows:
        return []
    return [
        "## Before / after (medians; the range of the runs in brackets)",
        table(["scenario", "figure", "before", "after", "change"], rows),
    ]
