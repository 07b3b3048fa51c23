"""Ingress: how many webhooks it takes, with the whole pipeline behind it, with the consumers
niced, and alone with the broker; closed loop (wrk) and at a fixed 1,000 webhooks/s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.isolation import Isolation
from benchmarks.measure import (
    SHAPES,
    Context,
    fixed_rate,
    pipeline_throughput,
    replies_to,
    users_of,
)
from benchmarks.pipeline import Pipeline
from benchmarks.processes import log

# What the consumers still hold from a previous phase would compete with the next one.
_BACKLOG = ("hiker.conversation.inbound", "hiker.sender.outbox")


def run(ctx: Context) -> dict[str, Any]:
    duration = ctx.seconds(4, 15)
    fixed_duration = ctx.seconds(5, 30)
    result: dict[str, Any] = {"throughput": [], "alone": []}
    log("ingress: whole pipeline (ingress, conversation, sender with pacing off, graph mock)")
    pipeline = Pipeline(Isolation(), ctx.out / "logs-ingress", prefetch=ctx.prefetch)
    with pipeline.iso as iso, pipeline:
        for per_post in SHAPES:
            iso.purge(*_BACKLOG)
            time.sleep(1)
            row = pipeline_throughput(ctx, pipeline, per_post, duration)
            log(
                f"  {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms, "
                f"replies {row['replies_per_s']}/s"
            )
            result["throughput"].append(row)
        iso.purge(*_BACKLOG)
        time.sleep(2)
        fixed = fixed_rate(
            ctx, pipeline.webhook_url, 1000, fixed_duration, "ingress-fixed", pipeline
        )
        # Every hello of the fixed-rate phase must come back as one reply (nothing lost, nothing
        # doubled), counted by its users: replies still in flight from the closed-loop phases
        # (prefetched before the purge) land meanwhile and must not count.
        expected = fixed["ok"]
        users = users_of(Path(fixed.pop("body_file")))
        deadline = time.monotonic() + ctx.seconds(30, 90)
        replies = replies_to(pipeline.graph_url, users)
        while len(replies) < expected and time.monotonic() < deadline:
            time.sleep(1)
            replies = replies_to(pipeline.graph_url, users)
        fixed["replies_sent"] = sum(replies.values())
        fixed["users_replied_twice"] = sum(1 for n in replies.values() if n > 1)
        result["fixed_rate"] = fixed
        log(
            f"  fixed 1000/s: p50 {fixed['p50_ms']} ms p99 {fixed['p99_ms']} ms, "
            f"replies {fixed['replies_sent']}/{expected}, "
            f"{fixed['users_replied_twice']} users replied twice"
        )
    result["log_problems"] = pipeline.log_problems
    log("ingress: whole pipeline, conversation and sender at nice 10 (ingress first for CPU)")
    with (
        Isolation() as iso,
        Pipeline(iso, ctx.out / "logs-ingress-niced", consumer_nice=10) as pipeline,
    ):
        time.sleep(1)
        row = pipeline_throughput(ctx, pipeline, 1, duration)
        result["niced_throughput"] = row
        log(f"  1/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms")
        iso.purge(*_BACKLOG)
        time.sleep(2)
        result["niced_fixed_rate"] = fixed_rate(
            ctx, pipeline.webhook_url, 1000, fixed_duration, "ingress-niced-fixed", pipeline
        )
        log(
            f"  fixed 1000/s: p50 {result['niced_fixed_rate']['p50_ms']} ms "
            f"p99 {result['niced_fixed_rate']['p99_ms']} ms"
        )
    log("ingress: alone with the broker (no consumers competing for the 2 cores)")
    with (
        Isolation() as iso,
        Pipeline(
            iso, ctx.out / "logs-ingress-alone", with_conversation=False, with_sender=False
        ) as pipeline,
    ):
        for per_post in SHAPES:
            row = pipeline_throughput(ctx, pipeline, per_post, duration)
            result["alone"].append(row)
            iso.purge("hiker.conversation.inbound")
            log(f"  {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms")
        result["alone_fixed_rate"] = fixed_rate(
            ctx, pipeline.webhook_url, 1000, fixed_duration, "ingress-alone-fixed"
        )
    return result
