"""The parts of the pipeline one at a time, every message going through the services' own
edges (nothing pre-loaded behind their back, so a baseline commit is measured the same way):

- ``timers``: many idle timers coming due at a fixed rate: firing lateness, due → Graph
  accepted. The users write a text no rule answers, so the timers are the only work left.
- ``drain``: conversation alone, then the sender alone, draining a backlog built by the
  services upstream of it: what one message costs each, and how many it handles per second.
- ``ingress``: wrk, closed loop, one-message webhooks: with the whole pipeline behind ingress,
  and alone with the broker.
- ``profile``: py-spy on every service while the pipeline takes a steady 600 webhooks/s (below
  saturation, so that each profile shows what a message costs, not who won the two cores).
"""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.support import metric_value

from benchmarks.context import Context, Result
from benchmarks.harness import FOLLOWUP_TEXT, Pipeline, log, wait_for
from benchmarks.load import histogram_quantile, loadgen, ms, pct, tools_python, write_bodies, wrk


def _timers_at(ctx: Context, count: int, rate: float) -> dict[str, Any]:
    sending = count / rate
    idle = round(sending + ctx.seconds(10, 30))
    env = ctx.env(HIKER_IDLE_TIMEOUT_SECONDS=str(idle))
    with Pipeline(ctx.side, ctx.out / f"logs-timers-{rate:g}", env=env) as pipeline:
        bodies = write_bodies(ctx.out / f"timers-{rate:g}.tsv", count, text="one moment")
        memory_before = pipeline.wait_queue_memory()
        report = loadgen(pipeline.webhook_url, bodies, rate=rate, duration=sending, records=True)
        sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
        first_due = min(sent_at.values()) + idle
        time.sleep(6)  # the management API's statistics are sampled every 5 s
        memory = pipeline.wait_queue_memory()
        time.sleep(max(0.0, first_due - 1 - time.time()))
        page_before, cpu_before = pipeline.metrics("conversation"), pipeline.cpu()

        def fired() -> float:
            return metric_value(pipeline.metrics("conversation"), "hiker_timers_fired_total")

        done = wait_for(fired, len(sent_at), stall=20, limit=sending + 120)
        fired_at, window = time.time(), time.time() - first_due + 1
        used = {n: t - cpu_before[n] for n, t in pipeline.cpu().items() if n in cpu_before}
        wait_for(pipeline.sent_count, len(sent_at), stall=10, limit=60)
        page_after = pipeline.metrics("conversation")
        followups = [m for m in pipeline.sent() if m["text"] == FOLLOWUP_TEXT]
    due_to_graph = [m["accepted_at"] - sent_at[m["to"]] - idle for m in followups]
    lateness = {
        q: ms(histogram_quantile(page_after, page_before, "hiker_timer_lateness_seconds", q))
        for q in (0.5, 0.99)
    }
    return {
        "timers": len(sent_at),
        "due_per_s": rate,
        "fired": int(done),
        "fired_per_s_while_due": round(done / max(1e-9, fired_at - first_due), 1),
        "lateness_p50_ms": lateness[0.5],
        "lateness_p99_ms": lateness[0.99],
        "due_to_graph_p50_ms": ms(pct(due_to_graph, 0.5)),
        "due_to_graph_p99_ms": ms(pct(due_to_graph, 0.99)),
        "followups_sent": len(followups),
        "wait_queue_bytes_per_timer": round((memory - memory_before) / len(sent_at))
        if memory is not None and memory_before is not None
        else None,
        "cores_while_due": {n: round(t.total / window, 3) for n, t in used.items()},
        "log_problems": pipeline.log_problems,
    }


def timers(ctx: Context) -> Result:
    """100,000 timers coming due at 1,000/s; then fewer at half the rate, to show the lateness
    where the machine is not saturated."""
    full = _timers_at(ctx, 10_000 if ctx.quick else 100_000, 1000.0)
    half = _timers_at(ctx, 5_000 if ctx.quick else 30_000, 500.0)
    figures = {}
    for row in (full, half):
        at = f"{row['timers']:,} due at {row['due_per_s']:,.0f}/s"
        figures[f"fired per s, {at}"] = row["fired_per_s_while_due"]
        figures[f"lateness p50 / p99 ms, {at}"] = (row["lateness_p50_ms"], row["lateness_p99_ms"])
        figures[f"due → Graph p99 ms, {at}"] = row["due_to_graph_p99_ms"]
        figures[f"follow-ups sent, {at}"] = row["followups_sent"]
        figures[f"wait queue bytes per timer, {at}"] = row["wait_queue_bytes_per_timer"]
    return {"figures": figures, "full": full, "half": half}


def _fill(pipeline: Pipeline, ctx: Context, count: int) -> None:
    """``count`` hellos, each from its own user, through ingress as fast as it takes them."""
    bodies = write_bodies(ctx.out / f"drain-{count}.tsv", count)
    loadgen(pipeline.webhook_url, bodies, concurrency=32, count=count)


def _drained(
    pipeline: Pipeline,
    service: str,
    fill: Callable[[], object],
    done: Callable[[], float],
    count: int,
) -> dict[str, Any]:
    """``service``, started and then paused (SIGSTOP) while ``fill()`` builds its backlog, so
    that neither its start-up nor a backlog still growing is measured; its CPU and rate from
    the moment it goes on until ``done()`` reaches ``count``."""
    process = pipeline.running[service]
    process.send_signal(signal.SIGSTOP)
    try:
        fill()
        cpu_before, started = pipeline.cpu()[service], time.monotonic()
    finally:
        process.send_signal(signal.SIGCONT)
    handled = wait_for(done, count, stall=20, limit=count / 100 + 60)
    seconds = time.monotonic() - started
    cpu = pipeline.cpu()[service] - cpu_before
    return {
        "messages": int(handled),
        "messages_per_s": round(handled / seconds, 1),
        "cores": round(cpu.total / seconds, 3),
        "cpu_us_per_message": round(cpu.total / max(1, handled) * 1e6, 1),
    }


def drain(ctx: Context, count: int | None = None) -> Result:
    count = count or (4000 if ctx.quick else 20000)
    logs = ctx.out / "logs-drain"
    with Pipeline(ctx.side, logs / "conversation", ("conversation", "ingress"), ctx.env()) as p:

        def handled() -> float:
            return metric_value(p.metrics("conversation"), "hiker_inbound_messages_total")

        conversation = _drained(p, "conversation", lambda: _fill(p, ctx, count), handled, count)
    with Pipeline(ctx.side, logs / "sender", env=ctx.env()) as p:

        def every_reply_in_the_outbox() -> None:
            _fill(p, ctx, count)
            wait_for(handled, count, stall=20, limit=count / 100 + 60)

        sender = _drained(p, "sender", every_reply_in_the_outbox, p.sent_count, count)
    log(f"drain: conversation {conversation}, sender {sender}")
    figures = {}
    for name, row in (("conversation", conversation), ("sender", sender)):
        figures[f"{name} alone, CPU µs per message"] = row["cpu_us_per_message"]
        figures[f"{name} alone, messages per s"] = row["messages_per_s"]
    return {"figures": figures, "conversation": conversation, "sender": sender}


def ingress(ctx: Context) -> Result:
    seconds = ctx.seconds(4, 15)
    rows = {}
    # wrk cycles through the bodies: enough for the fastest rate, so that none repeats.
    for setup, services in (("whole pipeline", None), ("alone with the broker", ("ingress",))):
        chosen = services or ("conversation", "sender", "ingress")
        log_dir = ctx.out / f"logs-ingress-{len(chosen)}"
        with Pipeline(ctx.side, log_dir, chosen, ctx.env()) as pipeline:
            bodies = write_bodies(ctx.out / f"ingress-{len(chosen)}.tsv", int(5000 * seconds))
            before = pipeline.cpu()["ingress"]
            row = wrk(pipeline.webhook_url, bodies, seconds=seconds, connections=ctx.connections)
            used = pipeline.cpu()["ingress"] - before
            ok = row["ok_per_s"] * row["seconds"]
            row["ingress_cpu_us_per_webhook"] = round(used.total / max(1, ok) * 1e6, 1)
            rows[setup] = row
    figures = {}
    for setup, row in rows.items():
        figures[f"{setup}: webhooks per s ({ctx.connections} connections)"] = row["ok_per_s"]
        figures[f"{setup}: p50 / p99 ms"] = (round(row["p50_ms"], 1), round(row["p99_ms"], 1))
        figures[f"{setup}: ingress CPU µs per webhook"] = row["ingress_cpu_us_per_webhook"]
    return {"figures": figures, "runs": rows}


# Where a sample's CPU went: the area of the innermost frame that belongs to one of these.
_AREAS = (
    ("signature (hmac)", ("hiker/core/signature.py", "hmac.py")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/", "orjson")),
    ("aio-pika/aiormq/pamqp", ("aio_pika/", "aiormq/", "pamqp/")),
    ("redis client", ("redis/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/", "pythonjsonlogger", "hiker/core/observability.py")),
    ("aiohttp", ("aiohttp/", "multidict/", "yarl/")),
    ("hiker code", ("hiker/",)),
    ("asyncio / event loop", ("asyncio/", "uvloop/", "selectors.py")),
)


def _areas(raw: str) -> dict[str, float]:
    """Share of py-spy's samples (collapsed stacks, ``a;b;c N``) per area, in percent."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")[::-1]
        area = next((a for f in frames for a, marks in _AREAS if any(m in f for m in marks)), None)
        counts[area or "other"] += int(number or 0)
    total = sum(counts.values()) or 1
    return {area: round(100 * n / total, 1) for area, n in counts.most_common()}


def profile(ctx: Context, rate: float = 600.0) -> Result:
    seconds = ctx.seconds(8, 20)
    py_spy = tools_python().parent / "py-spy"
    with Pipeline(ctx.side, ctx.out / "logs-profile", env=ctx.env()) as pipeline:
        spies = {}
        for name in ("ingress", "conversation", "sender"):
            argv = [str(py_spy), "record", "--pid", str(pipeline.running[name].pid)]
            argv += ["--rate", "100", "--duration", str(int(seconds - 2)), "--format", "raw"]
            argv += ["--output", str(ctx.out / f"profile-{name}.txt")]
            spies[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        bodies = write_bodies(ctx.out / "profile.tsv", int(rate * seconds))
        loadgen(pipeline.webhook_url, bodies, rate=rate, duration=seconds)
        for spy in spies.values():
            spy.wait(60)
    services = {name: _areas((ctx.out / f"profile-{name}.txt").read_text()) for name in spies}
    figures = {
        f"{name}: {area} %": share
        for name, areas in services.items()
        for area, share in list(areas.items())[:4]
    }
    # The raw profiles stay beside the results: ``flamegraph.pl`` or speedscope read them.
    return {"figures": figures, "areas_pct": services, "raw_profiles": str(ctx.out)}
