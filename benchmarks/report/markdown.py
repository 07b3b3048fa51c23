"""Markdown for the report: a table, a cell's number format, a change between two runs."""

from __future__ import annotations

from typing import Any


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 10:
            return f"{v:,.1f}"
        return f"{v:.2f}" if abs(v) >= 0.1 or v == 0 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def with_range(median: Any, runs: list[Any]) -> str:
    numbers = [r for r in runs if isinstance(r, int | float)]
    if len(numbers) < 2:
        return cell(median)
    return f"{cell(median)} ({cell(min(numbers))} to {cell(max(numbers))})"


def change(was: Any, now: Any) -> str | None:
    if not isinstance(was, int | float) or not isinstance(now, int | float) or not was:
        return None
    return f"{(now - was) / abs(was) * 100:+.0f} %"
