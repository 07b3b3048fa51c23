"""The sender alone, draining pre-loaded send commands against the Graph mock: unpaced (its
capacity and CPU per send) and at the default 80/s pacing (how evenly it holds the rate)."""

from __future__ import annotations

import asyncio
import collections
import statistics
import time
from typing import Any

from benchmarks import preload
from benchmarks.isolation import Isolation
from benchmarks.measure import Context
from benchmarks.pipeline import Pipeline
from benchmarks.processes import log


def run(ctx: Context) -> dict[str, Any]:
    result: dict[str, Any] = {}
    unpaced = 3000 if ctx.quick else 20000
    paced_seconds = ctx.seconds(8, 30)
    for label, rate, count in (
        ("unpaced", 0.0, unpaced),
        ("paced_80", 80.0, int(80 * paced_seconds)),
    ):
        with (
            Isolation() as iso,
            Pipeline(
                iso,
                ctx.out / f"logs-sender-{label}",
                send_rate=rate,
                with_ingress=False,
                with_conversation=False,
                prefetch=ctx.prefetch,
            ) as pipeline,
        ):
            pipeline.services.pop("sender").stop()  # declared the topology; refill while away
            asyncio.run(preload.publish_sends(iso.amqp_url, count))
            started = time.time()
            service = pipeline.start_sender()
            cpu0 = service.cpu().total
            deadline = time.time() + count / (rate or 500) + 60
            while pipeline.sent_count() < count and time.time() < deadline:
                time.sleep(0.5)
            cpu = service.cpu().total - cpu0
            times = sorted(m["accepted_at"] for m in pipeline.sent())
        steady = times[len(times) // 10 : len(times) * 9 // 10]
        span = steady[-1] - steady[0] if len(steady) > 1 else 0.0
        measured = (len(steady) - 1) / span if span else 0.0
        per_second = collections.Counter(int(t) for t in steady)
        full_seconds = sorted(per_second.items())[1:-1]
        row = {
            "commands": count,
            "sent": len(times),
            "configured_rate": rate or None,
            "sends_per_s": round(measured, 1),
            "per_second_min": min((c for _, c in full_seconds), default=None),
            "per_second_max": max((c for _, c in full_seconds), default=None),
            "per_second_stdev": round(statistics.pstdev([c for _, c in full_seconds]), 1)
            if full_seconds
            else None,
            "sender_cores": round(cpu / max(1e-9, (times[-1] - started) if times else 1), 3),
            "cpu_us_per_message": round(cpu / len(times) * 1e6, 1) if times else None,
        }
        if rate:
            row["deviation_pct"] = round((measured - rate) / rate * 100, 2)
            row["within_5pct"] = abs(measured - rate) / rate <= 0.05
        result[label] = row
        log(f"sender {label}: {row['sends_per_s']}/s ({row['sent']}/{count} sent)")
    return result
