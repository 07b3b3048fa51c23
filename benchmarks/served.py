"""What a served message costs and how fast replies come, against the peers.

- ``cost``: every user says ``hello`` once at a fixed offered rate (open loop), replies
  unpaced; the CPU each process used from the start of the load until the last reply reached
  the Graph mock (a backlog's included) divided by the replies. The pipeline is ingress,
  conversation, sender, the RabbitMQ node and Redis; the Graph mock and the load generator are
  the bench, shown apart. RabbitMQ and Redis are shared: their CPU while this run sends nothing
  is measured around the load and shown as an estimate of others' part.
- ``replies``: the same hellos closed loop at the same concurrency to Hiker's whole pipeline,
  to pywa (and at the concurrency pywa does best) and to the seed design, counted where they
  land: from the first request written to the last reply the Graph mock accepted.
- ``e2e``: webhooks at 500/s over ten phone numbers paced at 80/s each; webhook sent → Graph
  mock accepted its reply.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port

from benchmarks.context import Context, Result, per_message
from benchmarks.harness import (
    ACCESS_TOKEN,
    APP_SECRET,
    DAEMONS,
    REPLY_TEXT,
    CpuTimes,
    Pipeline,
    background_cores,
    log,
    wait_for,
)
from benchmarks.load import (
    PHONE_NUMBER_ID,
    histogram_quantile,
    loadgen,
    ms,
    pct,
    reply_latencies,
    tools_python,
    write_bodies,
)

PIPELINE = ("ingress", "conversation", "sender", "rabbitmq", "redis")
APPS = Path(__file__).parent
_WARM_UP = 200  # replies before measuring: connections, script loads, first imports


def _warm_up(pipeline: Pipeline, url: str, out: Path) -> None:
    before = pipeline.sent_count()
    loadgen(url, write_bodies(out / "warm-up.tsv", _WARM_UP), concurrency=4, count=_WARM_UP)
    wait_for(lambda: pipeline.sent_count() - before, _WARM_UP, stall=10, limit=30)
    pipeline.forget_sent()


@dataclass(frozen=True)
class Start:
    """Where a measurement starts: every process's CPU, the replies so far, the clock."""

    cpu: dict[str, CpuTimes]
    sent: int
    at: float


def _start(pipeline: Pipeline, *others: tuple[str, int]) -> Start:
    return Start(pipeline.cpu(*others), pipeline.sent_count(), time.monotonic())


def _served(
    pipeline: Pipeline,
    report: dict[str, Any],
    start: Start,
    limit: float,
    processes: tuple[str, ...],
    *others: tuple[str, int],
) -> dict[str, Any]:
    """The replies to what ``report`` sent, once they stopped coming, and the CPU per reply."""
    summary = report["summary"]
    sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
    wait_for(lambda: pipeline.sent_count() - start.sent, len(sent_at), stall=15, limit=limit)
    used = {n: t - start.cpu[n] for n, t in pipeline.cpu(*others).items() if n in start.cpu}
    used["loadgen"] = CpuTimes(summary["generator_user_s"], summary["generator_system_s"])
    latencies, last, twice = reply_latencies(pipeline.sent(), sent_at, REPLY_TEXT)
    seconds = last - summary["first_sent_at"] if latencies else None
    return {
        "webhooks": summary["requests"],
        "webhooks_ok": summary["ok"],
        "replies": len(latencies),
        "lost": summary["ok"] - len(latencies),
        "users_replied_twice": twice,
        "replies_per_s": round(len(latencies) / seconds, 1) if seconds else None,
        "webhook_p50_ms": round(summary["p50_ms"], 2),
        "webhook_p99_ms": round(summary["p99_ms"], 2),
        "e2e_p50_ms": ms(pct(latencies, 0.5)),
        "e2e_p99_ms": ms(pct(latencies, 0.99)),
        "generator_lag_p99_ms": round(summary["generator_lag_p99_ms"], 2),
        "cpu": per_message(used, len(latencies), time.monotonic() - start.at, processes),
        "log_problems": pipeline.log_problems,
    }


def cost(ctx: Context) -> Result:
    duration = ctx.seconds(5, 20)
    figures: dict[str, Any] = {}
    rates = []
    for rate in (300, 1000):
        with Pipeline(ctx.side, ctx.out / f"logs-cost-{rate}", env=ctx.env()) as pipeline:
            _warm_up(pipeline, pipeline.webhook_url, ctx.out)
            bodies = write_bodies(ctx.out / f"cost-{rate}.tsv", int(rate * duration))
            idle = background_cores()
            start = _start(pipeline)
            report = loadgen(
                pipeline.webhook_url, bodies, rate=rate, duration=duration, records=True
            )
            row = _served(pipeline, report, start, ctx.seconds(90, 240), PIPELINE)
            row |= {
                "rate": rate,
                "background_cores_before": idle,
                "background_cores_after": background_cores(),
            }
        rates.append(row)
        at = f"at {rate:,}/s"
        figures[f"pipeline CPU ms per reply {at}"] = row["cpu"]["total_ms_per_message"]
        for process in (*PIPELINE, "graph-mock", "loadgen"):
            figures[f"  {process} {at}"] = row["cpu"]["ms_per_message"].get(process)
        figures[f"e2e p50 / p99 ms {at}"] = (row["e2e_p50_ms"], row["e2e_p99_ms"])
        figures[f"webhook p50 / p99 ms {at}"] = (row["webhook_p50_ms"], row["webhook_p99_ms"])
        figures[f"replies per s {at}"] = row["replies_per_s"]
        figures[f"replies lost / doubled {at}"] = (row["lost"], row["users_replied_twice"])
        log(f"cost {at}: {row['cpu']['total_ms_per_message']} ms CPU per reply")
    return {"figures": figures, "duration_s": duration, "rates": rates}


def _start_app(name: str, graph_url: str, log_dir: Path) -> tuple[Any, str]:
    """pywa's or the seed design's app (benchmarks/<name>_app), fresh: no backlog carried over."""
    port = free_port()
    settings = {"PORT": str(port), "GRAPH_URL": graph_url, "APP_SECRET": APP_SECRET}
    settings |= {"TOKEN": ACCESS_TOKEN, "PHONE_ID": PHONE_NUMBER_ID}
    env = dict(os.environ) | {f"{name.upper()}_{key}": value for key, value in settings.items()}
    argv = [str(tools_python()), str(APPS / f"{name}_app" / "app.py")]
    process = DAEMONS.start(argv, log=log_dir / f"{name}.log", env=env)
    url = f"http://127.0.0.1:{port}/webhook"
    ready = f"{url}?hub.mode=subscribe&hub.verify_token=bench-verify&hub.challenge=1"
    if not wait_for(lambda: float(_answers(ready)), 1, stall=60, limit=60):
        DAEMONS.stop(process)
        raise RuntimeError(f"{name} did not answer; see {log_dir / name}.log")
    return process, url


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _closed_loop(ctx: Context, system: str, count: int, concurrency: int) -> dict[str, Any]:
    label = f"{system}-c{concurrency}"
    services = ("conversation", "sender", "ingress") if system == "hiker" else ()
    with Pipeline(ctx.side, ctx.out / f"logs-replies-{label}", services, ctx.env()) as pipeline:
        app, url = None, pipeline.webhook_url
        others: tuple[tuple[str, int], ...] = ()
        if system != "hiker":
            app, url = _start_app(system, pipeline.graph_url, pipeline.log_dir)
            others = ((system, app.pid),)
        try:
            _warm_up(pipeline, url, ctx.out)
            bodies = write_bodies(ctx.out / f"replies-{label}.tsv", count)
            start = _start(pipeline, *others)
            report = loadgen(url, bodies, concurrency=concurrency, count=count, records=True)
            processes = PIPELINE if system == "hiker" else (system,)
            limit = ctx.seconds(60, 180)
            row = _served(pipeline, report, start, limit, processes, *others)
        finally:
            if app is not None:
                DAEMONS.stop(app)
    log(f"replies {label}: {row['replies_per_s']}/s, lost {row['lost']}")
    return row | {"concurrency": concurrency}


def replies(ctx: Context) -> Result:
    count = 1000 if ctx.quick else 4000
    systems = {"hiker-c32": _closed_loop(ctx, "hiker", count, 32)}
    if ctx.side.name == "current":  # neither peer depends on Hiker's code
        # pywa answers 200 before it replies and bounds nothing it still has to send: at 32
        # in flight the replies pile up behind its HTTP client's pool until they time out.
        for concurrency in (32, 8, 4):
            systems[f"pywa-c{concurrency}"] = _closed_loop(ctx, "pywa", count, concurrency)
        systems["seed-c32"] = _closed_loop(ctx, "seed", count, 32)
    figures: dict[str, Any] = {}
    for name, row in systems.items():
        figures[f"{name} replies per s"] = row["replies_per_s"]
        figures[f"{name} replies lost"] = row["lost"]
        figures[f"{name} CPU ms per reply"] = row["cpu"]["total_ms_per_message"]
    best_pywa = max((r["replies_per_s"] or 0 for n, r in systems.items() if "pywa" in n), default=0)
    if best_pywa:
        figures["Hiker over pywa at its best"] = round(
            (systems["hiker-c32"]["replies_per_s"] or 0) / best_pywa, 2
        )
    return {"figures": figures, "count": count, "systems": systems}


def e2e(ctx: Context) -> Result:
    rate, duration = 500, ctx.seconds(8, 30)
    numbers = tuple(f"1000000000{i:05d}" for i in range(10))
    env = ctx.env(HIKER_SEND_RATE_PER_SECOND="80")
    with Pipeline(ctx.side, ctx.out / "logs-e2e", env=env) as pipeline:
        bodies = write_bodies(ctx.out / "e2e.tsv", rate * int(duration), phone_number_ids=numbers)
        histogram_before = pipeline.metrics("sender")
        start = _start(pipeline)
        report = loadgen(pipeline.webhook_url, bodies, rate=rate, duration=duration, records=True)
        row = _served(pipeline, report, start, 90, PIPELINE)
        histogram_after = pipeline.metrics("sender")
    name = "hiker_end_to_end_latency_seconds"
    for q in (0.5, 0.99):
        row[f"sender_histogram_p{q * 100:g}_ms"] = ms(
            histogram_quantile(histogram_after, histogram_before, name, q)
        )
    figures = {
        "e2e p50 ms": row["e2e_p50_ms"],
        "e2e p99 ms": row["e2e_p99_ms"],
        "replies lost": row["lost"],
        "webhook p99 ms": row["webhook_p99_ms"],
    }
    return {"figures": figures, "rate": rate, "seconds": duration, "numbers": 10} | row
