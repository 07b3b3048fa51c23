"""The served-message tables: CPU per served message (cost) and replies per second (replies)."""

from __future__ import annotations

from typing import Any

from benchmarks.report.markdown import change, table

_COST_ROWS = (
    ("ingress", "ingress"),
    ("conversation", "conversation"),
    ("sender", "sender"),
    ("rabbitmq", "RabbitMQ (node)"),
    ("redis", "Redis"),
    (None, "**pipeline**"),
    ("graph-mock", "Graph mock (bench)"),
    ("loadgen", "load generator (bench)"),
)


def _cost_cpu(rate: dict[str, Any], process: str | None) -> dict[str, Any]:
    found: dict[str, Any] = rate["pipeline"] if process is None else rate["cpu"].get(process, {})
    return found


def cost(c: dict[str, Any], before: dict[str, Any] | None = None) -> list[str]:
    if "rates" not in c:
        return []
    rates = c["rates"]
    parts = [
        f"## CPU per served message ({c['duration_s']:.0f} s at each offered rate, each user "
        "says hello once, replies unpaced)",
        "CPU-ms (utime + stime from /proc) of each process from the start of the load to the "
        "last reply, divided by the replies that reached the Graph mock; pipeline = ingress + "
        "conversation + sender + RabbitMQ + Redis."
        + (f" Median of {c['repeats']} runs." if c.get("repeats") else ""),
    ]
    headers = ["CPU ms per reply"]
    for r in rates:
        headers += [f"{r['rate']:,.0f}/s", "user", "system", "cores"]
    rows = []
    for process, label in _COST_ROWS:
        row: list[Any] = [label]
        for r in rates:
            cpu = _cost_cpu(r, process)
            row += [
                cpu.get("ms_per_reply"),
                cpu.get("user_ms_per_reply"),
                cpu.get("system_ms_per_reply"),
                cpu.get("cores"),
            ]
        rows.append(row)
    parts.append(table(headers, rows))
    if before and "rates" in before:
        old = {r["rate"]: r for r in before["rates"]}
        headers = ["CPU ms per reply"]
        for r in rates:
            headers += [f"{r['rate']:,.0f}/s before", "after", "change"]
        rows = []
        for process, label in _COST_ROWS:
            row = [label]
            for r in rates:
                was = (
                    _cost_cpu(old[r["rate"]], process).get("ms_per_reply")
                    if r["rate"] in old
                    else None
                )
                now = _cost_cpu(r, process).get("ms_per_reply")
                row += [was, now, change(was, now)]
            rows.append(row)
        parts.append("Before and after (medians):")
        parts.append(table(headers, rows))
    rows = [
        [
            round(r["rate"]),
            f"{r['webhooks_ok']:,} / {r['webhooks']:,}",
            r["replies"],
            r["lost"],
            r["seconds_to_last_reply"],
            r["replies_per_s"],
            r["e2e_p50_ms"],
            r["e2e_p99_ms"],
            r["e2e_max_ms"],
            r["webhook_p99_ms"],
            r["generator_lag_p99_ms"],
            " + ".join(f"{v:.2f}" for v in r.get("background_cores", {}).values()) or None,
            r.get("background_ms_per_reply"),
        ]
        for r in rates
    ]
    parts.append(
        table(
            [
                "offered/s",
                "webhooks 200 / sent",
                "replies",
                "lost",
                "s to last reply",
                "replies/s",
                "e2e p50 ms",
                "e2e p99 ms",
                "e2e max ms",
                "webhook p99 ms",
                "generator lag p99 ms",
                "RabbitMQ + Redis cores idle",
                "of which others' (ms/reply)",
            ],
            rows,
        )
    )
    parts.append(
        "e2e: the webhook's scheduled send time → the Graph mock accepted its reply. Idle: the "
        "shared servers' CPU while this run sent them nothing (before the load and after the "
        "last reply), others' work that their rows above include; the last column is that "
        "idle CPU over the window, per reply (an estimate)."
    )
    return parts


_SYSTEMS = (
    ("hiker", "Hiker (whole pipeline)"),
    ("pywa", "pywa 4.5 (FastAPI + uvicorn)"),
    ("pywa_c8", "pywa 4.5, concurrency 8"),
    ("pywa_c4", "pywa 4.5, concurrency 4"),
    ("seed", "seed design (Flask threaded server, inline reply)"),
)


def replies(r: dict[str, Any]) -> list[str]:
    if "systems" not in r:
        return []
    rows = []
    for key, label in _SYSTEMS:
        x = r["systems"].get(key)
        if not x or "replies" not in x:
            continue
        cpu = x.get("cpu_ms_per_reply", {})
        rows.append(
            [
                label,
                x["replies_per_s"],
                x["replies"],
                x["lost"],
                x["webhook_failures"],
                x["seconds"],
                x["webhook_p50_ms"],
                x["webhook_p99_ms"],
                x["e2e_p50_ms"],
                x["e2e_p99_ms"],
                x["system_ms_per_reply"],
                cpu.get("graph-mock"),
                cpu.get("loadgen"),
            ]
        )
    parts = [
        f"## Replies served per second ({r['count']:,} hellos, one user each, closed loop at "
        f"concurrency {r['concurrency']} unless the row says otherwise)",
        "From the first request to the last reply the Graph mock accepted. CPU ms per reply: "
        "Hiker's whole pipeline (ingress, conversation, sender, RabbitMQ, Redis), or the app's "
        "one process.",
        table(
            [
                "system",
                "replies/s",
                "replies",
                "lost (200, no reply)",
                "webhooks failed",
                "seconds",
                "webhook p50 ms",
                "webhook p99 ms",
                "e2e p50 ms",
                "e2e p99 ms",
                "CPU ms per reply",
                "Graph mock ms/reply",
                "generator ms/reply",
            ],
            rows,
        ),
    ]
    names = {"pywa": "pywa", "pywa_best": "pywa at its best concurrency", "seed": "seed"}
    ratios = [
        f"Hiker ÷ {label}: **{r[f'hiker_over_{name}']:.2f}x**"
        for name, label in names.items()
        if r.get(f"hiker_over_{name}")
    ]
    if ratios:
        parts.append("; ".join(ratios) + " (replies per second).")
    return parts
