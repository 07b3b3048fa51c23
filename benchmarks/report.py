"""The Markdown report: each scenario's figures, and with ``--baseline`` the medians of both
sides with the change; every run's details stay in the JSON beside it."""

from __future__ import annotations

import statistics
from typing import Any


def median_result(runs: list[Any]) -> Any:
    """The element-wise median of several runs' results: numbers by their median, dicts key by
    key, lists and pairs of equal length item by item; anything else from the first run."""
    runs = [r for r in runs if not (isinstance(r, dict) and "error" in r)] or runs
    first = runs[0]
    if len(runs) == 1:
        return first
    numbers = [r for r in runs if _is_number(r)]
    if numbers and all(r is None or _is_number(r) for r in runs):
        middle = statistics.median(numbers)
        return int(middle) if all(isinstance(r, int) for r in numbers) else round(middle, 3)
    if all(isinstance(r, dict) for r in runs):
        return {
            key: median_result([r[key] for r in runs]) if all(key in r for r in runs) else value
            for key, value in first.items()
        }
    if all(isinstance(r, list | tuple) and len(r) == len(first) for r in runs):
        return [median_result(list(items)) for items in zip(*runs, strict=True)]
    return first


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return " / ".join(cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def change(was: Any, now: Any) -> str:
    if isinstance(was, list | tuple) and isinstance(now, list | tuple):
        return " / ".join(change(a, b) for a, b in zip(was, now, strict=False))
    if not _is_number(was) or not _is_number(now) or not was:
        return ""
    return f"{(now - was) / abs(was) * 100:+.0f} %"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _problems(value: Any, found: dict[str, int]) -> dict[str, int]:
    """Every ``log_problems`` of a result, wherever its pipelines reported them."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "log_problems" and isinstance(inner, dict):
                for what, count in inner.items():
                    found[what] = found.get(what, 0) + count
            else:
                _problems(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _problems(inner, found)
    return found


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    current = results["sides"]["current"]
    before = results["sides"].get("baseline")
    parts = [
        f"# Hiker benchmarks ({'quick' if results['quick'] else 'full'} run {results['started']})",
        f"{machine['cpus']} CPUs, load average {machine['load_at_start']:.2f} at the start and "
        f"{machine['load_at_end']:.2f} at the end; Python {machine['python']}; "
        f"{results['seconds']:.0f} s. Services of {current['label']}"
        + (f", against {before['label']} (interleaved runs, medians)." if before else "."),
    ]
    if results.get("interrupted"):
        parts.append("**Interrupted**: only what finished is shown.")
    errors, problems = [], {}
    for name, now in current["scenarios"].items():
        was = before["scenarios"].get(name, {}) if before else {}
        runs = current["runs"].get(name, 1)
        parts.append(f"## {name}" + (f" (median of {runs} runs)" if runs > 1 else ""))
        rows = []
        for figure, value in now.get("figures", {}).items():
            if before:
                old = was.get("figures", {}).get(figure)
                rows.append([figure, cell(old), cell(value), change(old, value)])
            else:
                rows.append([figure, cell(value)])
        headers = ["figure", "before", "after", "change"] if before else ["figure", "value"]
        if rows:
            parts.append(_table(headers, rows))
        for side, result in (("", now), ("before: ", was)):
            if "error" in result:
                errors.append(f"- {side}{name}: {result['error']}")
            for what, count in _problems(result, {}).items():
                problems[f"{side}{name}: {what}"] = count
    if problems:
        listed = [f"- {what}: {count}" for what, count in sorted(problems.items())]
        parts.append("## Warnings and errors the services logged\n" + "\n".join(listed))
    if errors:
        parts.append("## Errors\n" + "\n".join(errors))
    return "\n\n".join(parts) + "\n"
