"""Conversation alone draining a backlog of ``hello`` messages: its capacity per core.

The closed-loop CPU tables divide every process's CPU by the webhooks taken in, while the
consumers finish only part of them within the phase; this measures what one processed message
costs conversation (reply and timer published with confirms, claim confirmed).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks import preload
from benchmarks.isolation import Isolation
from benchmarks.measure import Context
from benchmarks.pipeline import Pipeline
from benchmarks.processes import log


def run(ctx: Context) -> dict[str, Any]:
    from hiker.core import topology

    inbound = topology.CONVERSATION_INBOUND_QUEUE
    count = 4000 if ctx.quick else 20000
    with (
        Isolation() as iso,
        Pipeline(
            iso,
            ctx.out / "logs-conversation",
            with_ingress=False,
            with_sender=False,
            prefetch=ctx.prefetch,
        ) as pipeline,
    ):
        pipeline.services.pop("conversation").stop()  # declared the topology; fill while away
        asyncio.run(preload.publish_messages(iso.amqp_url, count))
        service = pipeline.start_conversation()
        cpu0, started = service.cpu().total, time.monotonic()
        samples: list[tuple[float, int]] = []
        deadline = started + count / 200 + 60
        while time.monotonic() < deadline:
            depth = iso.depths(inbound)[inbound] or 0
            samples.append((time.monotonic(), depth))
            if depth == 0:
                break
            time.sleep(0.25)
        cpu = service.cpu().total - cpu0
        elapsed = samples[-1][0] - started
    # The steady part: from a tenth of the backlog done to nine tenths (no start-up, no tail).
    steady = [(t, d) for t, d in samples if count * 0.1 <= count - d <= count * 0.9]
    rate = (steady[0][1] - steady[-1][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else 0
    row = {
        "messages": count,
        "left": samples[-1][1],
        "messages_per_s": round(rate, 1),
        "conversation_cores": round(cpu / elapsed, 3) if elapsed else None,
        "cpu_us_per_message": round(cpu / count * 1e6, 1),
    }
    log(f"conversation: {row['messages_per_s']}/s, {row['cpu_us_per_message']} µs CPU/message")
    return row
