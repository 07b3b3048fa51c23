"""Replies served per second, closed loop: the same hellos (one user each) at the same
concurrency to Hiker's whole pipeline, to pywa and to the seed design, counted where they land:
from the first request written to the last reply the Graph mock accepted.

Closed loop, so each system runs as fast as it can; a system that answers 200 before it replies
(pywa) is credited only with the replies that arrive, and one that loses replies shows them lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import bodies, processes
from benchmarks.isolation import Isolation
from benchmarks.measure import (
    Context,
    await_replies,
    cpu_snapshot,
    cpu_used,
    ms,
    pct,
    reply_latencies,
    run_loadgen,
)
from benchmarks.pipeline import ACCESS_TOKEN, APP_SECRET, REPLY_TEXT, Pipeline
from benchmarks.processes import CpuTimes, Service, log
from benchmarks.scenarios.pywa import start_pywa

CONCURRENCY = 32
# pywa answers 200 before it replies and keeps no bound on the replies still to make: at
# CONCURRENCY they pile up behind its HTTP client's pool until they time out (httpx.PoolTimeout).
# It is also measured at lower concurrency, and compared at its best.
PYWA_ALSO_AT = (4, 8)
HIKER = ("ingress", "conversation", "sender", "rabbitmq", "redis")
SEED_APP = Path(__file__).resolve().parent.parent / "seed_app" / "app.py"
_WARM_UP = 100

StartApp = Callable[[Context, str, Path], tuple[Service, str]]


def run(ctx: Context) -> dict[str, Any]:
    count = 1000 if ctx.quick else 4000
    systems: dict[str, Any] = {"hiker": hiker(ctx, count)}
    if ctx.side == "current":  # neither depends on Hiker's code
        systems["pywa"] = other(ctx, count, "pywa", start_pywa)
        for concurrency in PYWA_ALSO_AT:
            systems[f"pywa_c{concurrency}"] = other(
                ctx, count, "pywa", start_pywa, concurrency=concurrency
            )
        systems["seed"] = other(ctx, count, "seed", start_seed)
    result: dict[str, Any] = {"count": count, "concurrency": CONCURRENCY, "systems": systems}
    mine = systems["hiker"]["replies_per_s"]
    pywa_rates = [
        x["replies_per_s"]
        for k, x in systems.items()
        if k.startswith("pywa") and x["replies_per_s"]
    ]
    rivals = {
        "pywa": systems.get("pywa", {}).get("replies_per_s"),
        "pywa_best": max(pywa_rates, default=None),
        "seed": systems.get("seed", {}).get("replies_per_s"),
    }
    for name, theirs in rivals.items():
        result[f"hiker_over_{name}"] = round(mine / theirs, 2) if mine and theirs else None
    return result


def hiker(ctx: Context, count: int) -> dict[str, Any]:
    pipeline = Pipeline(Isolation(), ctx.out / "logs-replies-hiker", prefetch=ctx.prefetch)
    with pipeline.iso, pipeline:
        return closed_loop(ctx, pipeline, pipeline.webhook_url, count, "hiker", {}, HIKER)


def other(
    ctx: Context, count: int, name: str, start: StartApp, *, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """``name``'s app, started fresh (no backlog carried over), under the same hellos."""
    label = name if concurrency == CONCURRENCY else f"{name}-c{concurrency}"
    log_dir = ctx.out / f"logs-replies-{label}"
    with (
        Isolation() as iso,
        Pipeline(
            iso, log_dir, with_ingress=False, with_conversation=False, with_sender=False
        ) as pipeline,
    ):
        app, url = start(ctx, pipeline.graph_url, log_dir)
        try:
            return closed_loop(
                ctx, pipeline, url, count, label, {name: app}, (name,), concurrency=concurrency
            )
        finally:
            app.stop()


def start_seed(ctx: Context, graph_url: str, log_dir: Path) -> tuple[Service, str]:
    port = processes.free_port()
    app = processes.start(
        "seed",
        [str(ctx.tools_python), str(SEED_APP)],
        {
            "SEED_PORT": str(port),
            "SEED_GRAPH_URL": graph_url,
            "SEED_APP_SECRET": APP_SECRET,
            "SEED_TOKEN": ACCESS_TOKEN,
        },
        log_dir=log_dir,
        ready_url=f"http://127.0.0.1:{port}/webhook?hub.mode=subscribe"
        f"&hub.verify_token=bench-verify&hub.challenge=1",
    )
    return app, f"http://127.0.0.1:{port}/webhook"


def closed_loop(
    ctx: Context,
    pipeline: Pipeline,
    url: str,
    count: int,
    name: str,
    apps: dict[str, Service],
    system: Sequence[str],
    *,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """``count`` hellos at ``concurrency`` against ``url``; replies counted at the Graph mock
    and CPU per reply of the ``system``'s processes (the mock and the generator apart)."""
    warm = bodies.write_bodies(
        ctx.out / f"bodies-replies-{name}-warm-up.tsv", posts=_WARM_UP, secret=APP_SECRET
    )
    before = pipeline.sent_count()
    run_loadgen(ctx, url, warm, concurrency=4, count=_WARM_UP, name=f"replies-{name}")
    await_replies(pipeline, before, _WARM_UP, stall=10, limit=30)
    pipeline.forget_sent()
    body_file = bodies.write_bodies(
        ctx.out / f"bodies-replies-{name}.tsv", posts=count, secret=APP_SECRET
    )
    before = pipeline.sent_count()
    cpu_before = cpu_snapshot(pipeline, apps)
    report = run_loadgen(
        ctx,
        url,
        body_file,
        concurrency=concurrency,
        count=count,
        records=True,
        name=f"replies-{name}",
    )
    summary = report["summary"]
    sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
    await_replies(pipeline, before, len(sent_at), stall=10, limit=ctx.seconds(60, 180))
    used = cpu_used(cpu_before, cpu_snapshot(pipeline, apps))
    latencies, last_reply = reply_latencies(pipeline.graph_url, sent_at, REPLY_TEXT)
    used["loadgen"] = CpuTimes(summary["generator_user_s"], summary["generator_system_s"])
    replies = len(latencies)
    seconds = last_reply - summary["first_sent_at"] if replies else None

    def ms_per_reply(names: Sequence[str]) -> float | None:
        total = sum(used[n].total for n in names if n in used)
        return round(total / replies * 1000, 3) if replies else None

    row = {
        "concurrency": concurrency,
        "requests": summary["requests"],
        "webhooks_ok": summary["ok"],
        "webhook_failures": summary["requests"] - summary["ok"],
        "replies": replies,
        "lost": summary["ok"] - replies,
        "seconds": round(seconds, 2) if seconds else None,
        "replies_per_s": round(replies / seconds, 1) if seconds else None,
        "webhooks_per_s": round(summary["achieved_rps"], 1),
        "webhook_p50_ms": round(summary["p50_ms"], 2),
        "webhook_p99_ms": round(summary["p99_ms"], 2),
        "e2e_p50_ms": ms(pct(latencies, 0.5)),
        "e2e_p99_ms": ms(pct(latencies, 0.99)),
        "system_ms_per_reply": ms_per_reply(system),
        "cpu_ms_per_reply": {n: ms_per_reply((n,)) for n in used},
        "log_problems": pipeline.log_problems,
    }
    log(
        f"replies {name}: {replies}/{summary['ok']} replies, {row['replies_per_s']}/s, "
        f"{row['system_ms_per_reply']} ms CPU per reply"
    )
    return row
