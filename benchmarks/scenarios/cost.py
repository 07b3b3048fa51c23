"""What one served message costs: every user says ``hello`` once at a fixed offered rate (open
loop), replies unpaced, and the CPU each process used from the start of the load until the last
reply reached the Graph mock (a backlog's CPU included) is divided by the replies that did.

Pipeline processes (ingress, conversation, sender, the RabbitMQ node, Redis) are what a message
costs; the Graph mock and the load generator are the test bench, shown apart. RabbitMQ and Redis
are shared with whatever else runs on them: their CPU while this run sends them nothing is
measured for two seconds before the load and after the last reply, and reported beside it as
an estimate of the part of their rows that is others' work.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import bodies
from benchmarks.isolation import Isolation
from benchmarks.measure import (
    Context,
    await_replies,
    background_cores,
    cpu_snapshot,
    cpu_used,
    ms,
    pct,
    reply_latencies,
    run_loadgen,
)
from benchmarks.pipeline import APP_SECRET, REPLY_TEXT, Pipeline
from benchmarks.processes import CpuTimes, log

RATES = (300.0, 1000.0)
PIPELINE = ("ingress", "conversation", "sender", "rabbitmq", "redis")
BENCH = ("graph-mock", "loadgen")
# Enough for the first messages' one-off costs (connections, script loads, first imports).
_WARM_UP = 200


def run(ctx: Context) -> dict[str, Any]:
    duration = ctx.seconds(5, 20)
    return {
        "duration_s": duration,
        "rates": [at_rate(ctx, rate, duration) for rate in RATES],
    }


def at_rate(ctx: Context, rate: float, duration: float) -> dict[str, Any]:
    name = f"cost-{rate:.0f}"
    pipeline = Pipeline(Isolation(), ctx.out / f"logs-{name}", prefetch=ctx.prefetch)
    with pipeline.iso, pipeline:
        warm_up(ctx, pipeline, name)
        body_file = bodies.write_bodies(
            ctx.out / f"bodies-{name}.tsv", posts=int(rate * duration), secret=APP_SECRET
        )
        background = background_cores()
        sent_before = pipeline.sent_count()
        before, started = cpu_snapshot(pipeline), time.monotonic()
        report = run_loadgen(
            ctx,
            pipeline.webhook_url,
            body_file,
            rate=rate,
            duration=duration,
            records=True,
            name=name,
        )
        summary = report["summary"]
        sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
        await_replies(
            pipeline,
            sent_before,
            len(sent_at),
            stall=15,
            limit=ctx.seconds(90, 240),
        )
        after, window = cpu_snapshot(pipeline), time.monotonic() - started
        latencies, last_reply = reply_latencies(pipeline.graph_url, sent_at, REPLY_TEXT)
        background_after = background_cores()
    replies = len(latencies)
    used = cpu_used(before, after)
    used["loadgen"] = CpuTimes(summary["generator_user_s"], summary["generator_system_s"])
    cpu = {process: per_reply(times, replies, window) for process, times in used.items()}
    total = CpuTimes(
        sum(used[n].user for n in PIPELINE if n in used),
        sum(used[n].system for n in PIPELINE if n in used),
    )
    seconds = last_reply - summary["first_sent_at"] if replies else None
    idle = {n: round((background[n] + background_after.get(n, 0.0)) / 2, 3) for n in background}
    # Others' share of the shared servers' rows, assuming it stayed at the level seen around.
    others = sum(idle.values())
    row = {
        "rate": rate,
        "duration_s": duration,
        "webhooks": summary["requests"],
        "webhooks_ok": summary["ok"],
        "webhook_failures": summary["requests"] - summary["ok"],
        "replies": replies,
        "lost": summary["ok"] - replies,
        "seconds_to_last_reply": round(seconds, 2) if seconds else None,
        "replies_per_s": round(replies / seconds, 1) if seconds else None,
        "e2e_p50_ms": ms(pct(latencies, 0.5)),
        "e2e_p99_ms": ms(pct(latencies, 0.99)),
        "e2e_max_ms": ms(max(latencies, default=None)),
        "webhook_p50_ms": round(summary["p50_ms"], 2),
        "webhook_p99_ms": round(summary["p99_ms"], 2),
        "generator_lag_p99_ms": round(summary["generator_lag_p99_ms"], 2),
        "background_cores": idle,
        "background_ms_per_reply": round(others * window / replies * 1000, 3) if replies else None,
        "cpu": cpu,
        "pipeline": per_reply(total, replies, window),
        "log_problems": pipeline.log_problems,
    }
    log(
        f"cost {rate:.0f}/s: {replies}/{summary['ok']} replies, pipeline "
        f"{row['pipeline']['ms_per_reply']} ms CPU per reply, e2e p99 {row['e2e_p99_ms']} ms"
    )
    return row


def per_reply(used: CpuTimes, replies: int, seconds: float) -> dict[str, float | None]:
    def each(value: float) -> float | None:
        return round(value / replies * 1000, 3) if replies else None

    return {
        "ms_per_reply": each(used.total),
        "user_ms_per_reply": each(used.user),
        "system_ms_per_reply": each(used.system),
        "cores": round(used.total / seconds, 3) if seconds else None,
    }


def warm_up(ctx: Context, pipeline: Pipeline, name: str) -> None:
    """A few replies through the whole pipeline before measuring, then the mock forgets them."""
    body_file = bodies.write_bodies(
        ctx.out / f"bodies-{name}-warm-up.tsv", posts=_WARM_UP, secret=APP_SECRET
    )
    before = pipeline.sent_count()
    run_loadgen(ctx, pipeline.webhook_url, body_file, rate=100, duration=_WARM_UP / 100, name=name)
    await_replies(pipeline, before, _WARM_UP, stall=10, limit=30)
    pipeline.forget_sent()
