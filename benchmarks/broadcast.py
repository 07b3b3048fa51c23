"""``broadcast``: 100,000 recipients through the api (10,000 with ``--quick``).

- How long ``POST /v1/broadcasts`` takes to answer (the recipients written, nothing sent yet).
- The api's and the sender's memory (RSS) sampled every two seconds while it sends: flat.
- Progress as a client sees it (``GET /v1/broadcasts/{id}``), sampled with the memory: sends
  a second, and how many were handed, accepted, sent (each user once: checked at the mock).
- Conversations' reply latency (webhook sent → Graph mock accepted its reply), on the same
  number, with no broadcast and while one runs at its share of the number's rate.

The api needs PostgreSQL (``BENCH_POSTGRES_URL``, default local, user postgres): a database of
its own is made for the run and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
import uuid
from collections import Counter
from typing import Any

import asyncpg
from tests.support import free_port

from benchmarks.context import Context, Result
from benchmarks.harness import REPLY_TEXT, Pipeline, log
from benchmarks.load import PHONE_NUMBER_ID, loadgen, ms, pct, reply_latencies, write_bodies

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
API_TOKEN = "bench-api-token-" + "0123456789abcdef" * 2
# The number's rate the sender is given; broadcasts take half (HIKER_BROADCAST_SHARE).
RATE = 1000
REPLY_RATE = 40


def _admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def _api(port: int, method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
        | headers,
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _replies(pipeline: Pipeline, ctx: Context, label: str, seconds: float) -> dict[str, Any]:
    """Hellos at REPLY_RATE for ``seconds``; the latency of their replies."""
    bodies = write_bodies(ctx.out / f"broadcast-{label}.tsv", int(REPLY_RATE * seconds))
    report = loadgen(pipeline.webhook_url, bodies, rate=REPLY_RATE, duration=seconds, records=True)
    sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
    deadline = time.monotonic() + 60
    latencies: list[float] = []
    while time.monotonic() < deadline:
        latencies, _, _ = reply_latencies(pipeline.sent(), sent_at, REPLY_TEXT)
        if len(latencies) >= len(sent_at):
            break
        time.sleep(1.0)
    return {
        "webhooks": len(sent_at),
        "replies": len(latencies),
        "p50_ms": ms(pct(latencies, 0.5)),
        "p99_ms": ms(pct(latencies, 0.99)),
    }


def broadcast(ctx: Context) -> Result:
    count = 10_000 if ctx.quick else 100_000
    reply_seconds = ctx.seconds(8, 30)
    database = f"hiker_bench_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{database}"')
    api_port = free_port()
    env = ctx.env(
        HIKER_SEND_RATE_PER_SECOND=str(RATE),
        HIKER_USER_SEND_INTERVAL_SECONDS="0",
        HIKER_API_TOKEN=API_TOKEN,
        HIKER_API_PORT=str(api_port),
        HIKER_DATABASE_URL=f"{ADMIN_URL.rsplit('/', 1)[0]}/{database}",
    )
    try:
        with Pipeline(ctx.side, ctx.out / "logs-broadcast", env=env) as pipeline:
            pipeline.ports["api"] = free_port()
            api = pipeline.start("api")
            try:
                return _run(ctx, pipeline, api.pid, api_port, count, reply_seconds)
            finally:
                pipeline.stop("api")
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _run(
    ctx: Context, pipeline: Pipeline, api_pid: int, port: int, count: int, reply_seconds: float
) -> Result:
    quiet = _replies(pipeline, ctx, "quiet", reply_seconds)
    users = [f"2{n:010d}" for n in range(count)]
    body = json.dumps(
        {
            "phone_number_id": PHONE_NUMBER_ID,
            "name": "bench",
            "template": {"name": "bench_update", "language": "en_US"},
            "recipients": [{"to": user, "parameters": [f"#{n}"]} for n, user in enumerate(users)],
        }
    ).encode()
    started = time.perf_counter()
    created = _api(port, "POST", "/v1/broadcasts", body, **{"Idempotency-Key": "bench-1"})
    answer_ms = round((time.perf_counter() - started) * 1000, 1)
    log(f"broadcast of {count:,}: answered in {answer_ms} ms ({len(body):,} bytes)")
    path = f"/v1/broadcasts/{created['id']}"
    samples: list[dict[str, Any]] = []
    sender_pid = pipeline.running["sender"].pid

    def sample() -> dict[str, Any]:
        view = _api(port, "GET", path)
        row = {
            "t": round(time.perf_counter() - started, 1),
            "state": view["state"],
            **view["counts"],
            "api_rss_mb": _rss_mb(api_pid),
            "sender_rss_mb": _rss_mb(sender_pid),
        }
        samples.append(row)
        return row

    sample()
    busy = _replies(pipeline, ctx, "during", reply_seconds)
    limit = time.monotonic() + ctx.seconds(120, 900)
    while time.monotonic() < limit:
        row = sample()
        if row["state"] == "done" and row["queued"] == 0 and row["sending"] == 0:
            break
        time.sleep(2.0)
    last = samples[-1]
    handed = count - last["queued"] - last["skipped"]
    seconds = last["t"] or 1.0
    times = Counter(m["to"] for m in pipeline.sent() if m["to"] and m["to"].startswith("2"))
    api_rss = [s["api_rss_mb"] for s in samples if s["api_rss_mb"] is not None]
    figures = {
        f"POST of {count:,} recipients: answer ms": answer_ms,
        "broadcast sends per s (handed to the sender)": round(handed / seconds, 1),
        "users sent / sent twice": (len(times), sum(1 for n in times.values() if n > 1)),
        "api RSS MB first / peak / last": (api_rss[0], max(api_rss), api_rss[-1])
        if api_rss
        else None,
        "reply p50 / p99 ms, no broadcast": (quiet["p50_ms"], quiet["p99_ms"]),
        "reply p50 / p99 ms, during the broadcast": (busy["p50_ms"], busy["p99_ms"]),
        "replies lost, during the broadcast": busy["webhooks"] - busy["replies"],
    }
    return {
        "figures": figures,
        "count": count,
        "request_bytes": len(body),
        "replies": {"quiet": quiet, "during": busy},
        "samples": samples,
        "log_problems": pipeline.log_problems,
    }
