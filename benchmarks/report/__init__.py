"""Render a results dict as Markdown: one section per scenario, and with ``--baseline`` the
before/after medians first."""

from __future__ import annotations

from typing import Any

from benchmarks.report import components, served
from benchmarks.report.compare import comparison


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        f"# Hiker benchmarks ({'quick' if results['quick'] else 'full'} run {results['started']})",
        f"{m['cpus']} CPUs, load average at start {m['load_avg_at_start'][0]:.2f}, "
        f"at end {m['load_avg_at_end'][0]:.2f}; Python {m['python']}; {results['seconds']} s.",
    ]
    if results.get("interrupted"):
        parts.append("**Interrupted**: only what finished before the interruption is shown.")
    current = results.get("current", {})
    before = results.get("baseline")
    if before:
        parts.append(
            f"**Before**: services of {before['label']}. **After**: the current tree, "
            f"{current.get('label')}. Interleaved runs, medians."
        )
        parts += comparison(results)
    elif current:
        parts.append(f"Services of {current.get('label')} ({current.get('hiker_file')}).")
    repeated = [
        f"{n} ({r['repeats']})" for n, r in results["scenarios"].items() if r.get("repeats")
    ]
    if repeated:
        parts.append(f"Medians of several runs: {', '.join(repeated)}.")
    parts += _sections(results["scenarios"], before["scenarios"] if before else None)
    if before:
        parts.append(f"# Before: {before['label']}")
        parts += _sections(before["scenarios"], None)
    scenario_sets = [("", results["scenarios"])]
    if before:
        scenario_sets.append(("before: ", before["scenarios"]))
    problems = [
        f"- {prefix}{name}: {count} x {what}"
        for prefix, found in scenario_sets
        for name, r in found.items()
        for what, count in sorted(_log_problems(r).items())
    ]
    if problems:
        parts.append("## Warnings and errors the services logged\n" + "\n".join(problems))
    errors = [
        f"- {prefix}{name}: {r['error']}"
        for prefix, found in scenario_sets
        for name, r in found.items()
        if "error" in r
    ]
    if errors:
        parts.append("## Errors\n" + "\n".join(errors))
    return "\n\n".join(parts) + "\n"


def _log_problems(result: dict[str, Any]) -> dict[str, int]:
    """Log problems of a scenario, wherever in its result its pipelines reported them."""
    found: dict[str, int] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "log_problems" and isinstance(inner, dict):
                    for what, count in inner.items():
                        found[what] = found.get(what, 0) + count
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(result)
    return found


def _sections(s: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    parts: list[str] = []
    parts += served.cost(s.get("cost", {}), (before or {}).get("cost"))
    parts += served.replies(s.get("replies", {}))
    for section in (
        components.ingress,
        components.pywa,
        components.e2e,
        components.timers,
        components.sender,
        components.conversation,
        components.profile,
    ):
        parts += section(s)
    return parts
