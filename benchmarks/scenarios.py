"""The benchmark scenarios. Each takes a ``Context`` and returns a JSON-able result dict."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import bodies, env, wrk
from benchmarks.env import Isolation, Pipeline, log

if TYPE_CHECKING:
    from hiker.core.contracts import Contract

# A contract to publish, with its message id and correlation id.
Published = tuple["Contract", str, str]

CONSUMERS = ("conversation", "sender", "graph-mock")


@dataclass
class Context:
    quick: bool
    out: Path
    tools_python: Path
    connections: int = 64
    prefetch: int | None = None  # conversation's and sender's HIKER_PREFETCH; None: default

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_snapshot(pipeline: Pipeline) -> dict[str, float]:
    snapshot = {name: s.cpu_seconds() for name, s in pipeline.services.items()}
    broker = env.broker_pid()
    if broker is not None:
        snapshot["rabbitmq"] = env.process_cpu_seconds(broker)
    return snapshot


def _cpu_report(
    before: dict[str, float], after: dict[str, float], seconds: float, messages: int
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, start in before.items():
        used = after.get(name, start) - start
        report[name] = {
            "cores": round(used / seconds, 3),
            "cpu_us_per_message": round(used / messages * 1e6, 1) if messages else None,
        }
    return report


def _purge(iso: Isolation, *queues: str) -> None:
    for name in queues:
        with contextlib.suppress(RuntimeError):
            env.rabbitmqctl("purge_queue", "-p", iso.vhost, name)


def run_loadgen(
    ctx: Context,
    url: str,
    body_file: Path,
    *,
    rate: float,
    duration: float,
    records: bool = False,
    name: str = "loadgen",
) -> dict[str, Any]:
    report_path = ctx.out / f"{name}.json"
    argv = [
        *env.load_tool_prefix(),
        str(ctx.tools_python),
        str(Path(__file__).parent / "loadgen.py"),
        "--url",
        url,
        "--bodies",
        str(body_file),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--out",
        str(report_path),
    ]
    if records:
        argv.append("--records")
    subprocess.run(argv, check=True, timeout=duration + 120, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(report_path.read_text())
    if not records:
        report_path.unlink()
    return report


# --- ingress (and the same shapes against pywa) ---------------------------------------------

SHAPES = (1, 10, 50)


def _bodies_for(ctx: Context, per_post: int, duration: float, text: str = "hello") -> Path:
    # Enough unique wamids for the fastest rate we could see; wrk wraps around if not.
    max_posts_per_s = {1: 6000, 10: 1200, 50: 300}[per_post]
    posts = int(max_posts_per_s * duration)
    path = ctx.out / f"bodies-{per_post}.tsv"
    return bodies.write_bodies(
        path, posts=posts, per_post=per_post, text=text, secret=env.APP_SECRET
    )


def _throughput(
    ctx: Context, url: str, body_file: Path, per_post: int, duration: float, cpu_of: Any = None
) -> dict[str, Any]:
    before = cpu_of() if cpu_of else {}
    result = wrk.run_wrk(
        url, body_file, duration=duration, connections=ctx.connections, workdir=ctx.out
    )
    seconds = result["duration_us"] / 1e6
    row = {
        "messages_per_post": per_post,
        "connections": ctx.connections,
        "posts_per_s": round(result["ok_rps"], 1),
        "messages_per_s": round(result["ok_rps"] * per_post, 1),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "non_2xx": result["status_errors"],
        "socket_errors": result["errors"],
        "seconds": round(seconds, 2),
    }
    if cpu_of:
        row["cpu"] = _cpu_report(before, cpu_of(), seconds, int(result["requests"] * per_post))
    return row


def _pipeline_throughput(
    ctx: Context, pipeline: Pipeline, per_post: int, duration: float
) -> dict[str, Any]:
    """``_throughput`` against ``pipeline``'s ingress, with the CPU of every process and, when
    the sender runs, the replies the pipeline completed meanwhile (the rest wait durably)."""
    body_file = _bodies_for(ctx, per_post, duration)
    sent_before = pipeline.sent_count()
    row = _throughput(
        ctx, pipeline.webhook_url, body_file, per_post, duration, lambda: _cpu_snapshot(pipeline)
    )
    if pipeline.with_sender:
        row["replies_per_s"] = round((pipeline.sent_count() - sent_before) / row["seconds"], 1)
    return row


def _fixed_rate(
    ctx: Context,
    url: str,
    rate: float,
    duration: float,
    name: str,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    body_file = bodies.write_bodies(
        ctx.out / f"bodies-fixed-{name}.tsv", posts=int(rate * duration), secret=env.APP_SECRET
    )
    before = _cpu_snapshot(pipeline) if pipeline else {}
    summary = run_loadgen(ctx, url, body_file, rate=rate, duration=duration, name=name)["summary"]
    result = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}
    if pipeline:
        result["cpu"] = _cpu_report(
            before, _cpu_snapshot(pipeline), summary["elapsed_s"], summary["ok"]
        )
    return result


def ingress(ctx: Context) -> dict[str, Any]:
    duration = ctx.seconds(4, 15)
    fixed_duration = ctx.seconds(5, 30)
    result: dict[str, Any] = {"throughput": [], "alone": []}
    log("ingress: whole pipeline (ingress, conversation, sender with pacing off, graph mock)")
    pipeline = Pipeline(Isolation(), ctx.out / "logs-ingress")
    with pipeline.iso as iso, pipeline:
        for per_post in SHAPES:
            _purge(iso, "hiker.conversation.inbound", "hiker.sender.outbox")
            time.sleep(1)
            row = _pipeline_throughput(ctx, pipeline, per_post, duration)
            log(
                f"  {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms, "
                f"replies {row['replies_per_s']}/s"
            )
            result["throughput"].append(row)
        _purge(iso, "hiker.conversation.inbound", "hiker.sender.outbox")
        time.sleep(2)
        sent_before = pipeline.sent_count()
        fixed = _fixed_rate(
            ctx, pipeline.webhook_url, 1000, fixed_duration, "ingress-fixed", pipeline
        )
        # Every hello of the fixed-rate phase must come back as a reply (nothing lost).
        expected = fixed["ok"]
        deadline = time.monotonic() + ctx.seconds(30, 90)
        while pipeline.sent_count() - sent_before < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        fixed["replies_sent"] = pipeline.sent_count() - sent_before
        result["fixed_rate"] = fixed
        log(
            f"  fixed 1000/s: p50 {fixed['p50_ms']} ms p99 {fixed['p99_ms']} ms, "
            f"replies {fixed['replies_sent']}/{expected}"
        )
    result["log_problems"] = pipeline.log_problems
    log("ingress: whole pipeline, conversation and sender at nice 10 (ingress first for CPU)")
    with (
        Isolation() as iso,
        Pipeline(iso, ctx.out / "logs-ingress-niced", consumer_nice=10) as pipeline,
    ):
        time.sleep(1)
        row = _pipeline_throughput(ctx, pipeline, 1, duration)
        result["niced_throughput"] = row
        log(f"  1/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms")
        _purge(iso, "hiker.conversation.inbound", "hiker.sender.outbox")
        time.sleep(2)
        result["niced_fixed_rate"] = _fixed_rate(
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
            row = _pipeline_throughput(ctx, pipeline, per_post, duration)
            result["alone"].append(row)
            _purge(iso, "hiker.conversation.inbound")
            log(f"  {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms")
        result["alone_fixed_rate"] = _fixed_rate(
            ctx, pipeline.webhook_url, 1000, fixed_duration, "ingress-alone-fixed"
        )
    return result


def pywa(ctx: Context) -> dict[str, Any]:
    duration = ctx.seconds(4, 15)
    fixed_duration = ctx.seconds(5, 30)
    result: dict[str, Any] = {"throughput": []}
    log_dir = ctx.out / "logs-pywa"
    with (
        Isolation() as iso,
        Pipeline(
            iso, log_dir, with_ingress=False, with_conversation=False, with_sender=False
        ) as pipeline,
    ):

        def start_app() -> tuple[env.Service, str]:
            # A fresh process per measurement: pywa's in-memory backlog does not carry over.
            port = env.free_port()
            app = env.start(
                "pywa",
                [str(ctx.tools_python), str(Path(__file__).parent / "pywa_app" / "app.py")],
                {
                    "PYWA_PORT": str(port),
                    "PYWA_GRAPH_URL": pipeline.graph_url,
                    "PYWA_APP_SECRET": env.APP_SECRET,
                    "PYWA_TOKEN": env.ACCESS_TOKEN,
                    "PYWA_PHONE_ID": bodies.PHONE_NUMBER_ID,
                },
                log_dir=log_dir,
                ready_url=f"http://127.0.0.1:{port}/webhook?hub.mode=subscribe"
                f"&hub.verify_token=bench-verify&hub.challenge=1",
            )
            return app, f"http://127.0.0.1:{port}/webhook"

        def failed_replies(app: env.Service, offset: int) -> int:
            # pywa logs a handler's exception (e.g. httpx.PoolTimeout) and drops the reply.
            with app.log_path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
            return sum(
                1
                for line in text.splitlines()
                if line.startswith("httpx.") and ("Error" in line or "Timeout" in line)
            )

        for per_post in SHAPES:
            body_file = _bodies_for(ctx, per_post, duration)
            offset = (log_dir / "pywa.log").stat().st_size if (log_dir / "pywa.log").exists() else 0
            app, url = start_app()
            try:
                sent_before = pipeline.sent_count()
                row = _throughput(
                    ctx,
                    url,
                    body_file,
                    per_post,
                    duration,
                    lambda app=app: {
                        "pywa": app.cpu_seconds(),
                        "graph-mock": pipeline.services["graph-mock"].cpu_seconds(),
                    },
                )
                # pywa answers 200 first and runs its handler afterwards (a FastAPI background
                # task), so replies are counted once they stop coming. It also reads only
                # entry[0].changes[0].messages[0]: at most one reply per POST.
                row["replies_sent"], row["replies_done_after_s"] = _settle_count(
                    pipeline, sent_before, ctx.seconds(30, 120)
                )
            finally:
                app.stop()
            row["replies_failed"] = failed_replies(app, offset)
            row["replies_per_s"] = round(
                row["replies_sent"] / (row["seconds"] + row["replies_done_after_s"]), 1
            )
            row["replies_per_post"] = round(
                row["replies_sent"] / max(1, row["posts_per_s"] * row["seconds"]), 2
            )
            result["throughput"].append(row)
            log(
                f"  pywa {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms, "
                f"replies {row['replies_per_s']}/s, replies/POST {row['replies_per_post']}"
            )
        offset = (log_dir / "pywa.log").stat().st_size
        app, url = start_app()
        try:
            sent_before = pipeline.sent_count()
            fixed = _fixed_rate(ctx, url, 1000, fixed_duration, "pywa-fixed")
        finally:
            # Whatever pywa accepted (200) but had not handled yet dies with the process.
            app.stop()
        time.sleep(1)
        fixed["replies_failed"] = failed_replies(app, offset)
        fixed["replies_sent"] = pipeline.sent_count() - sent_before
        fixed["accepted_but_lost_on_stop"] = fixed["ok"] - fixed["replies_sent"]
        result["fixed_rate"] = fixed
        log(
            f"  pywa fixed 1000/s: {fixed['achieved_rps']}/s, p99 {fixed['p99_ms']} ms, "
            f"lost on stop {fixed['accepted_but_lost_on_stop']}"
        )
    return result


def _settle_count(pipeline: Pipeline, before: int, limit: float) -> tuple[int, float]:
    """Graph mock count once it stopped growing for 2 s; and how long after that took."""
    started = time.monotonic()
    last, last_change = pipeline.sent_count(), time.monotonic()
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        now_count = pipeline.sent_count()
        if now_count != last:
            last, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change >= 2:
            break
    return last - before, round(last_change - started, 1)


# --- end to end -------------------------------------------------------------------------------


def e2e(ctx: Context) -> dict[str, Any]:
    rate = 500
    duration = ctx.seconds(8, 30)
    numbers = [f"1000000000{i:05d}" for i in range(10)]
    pipeline = Pipeline(Isolation(), ctx.out / "logs-e2e", send_rate=80)
    with pipeline.iso, pipeline:
        body_file = bodies.write_bodies(
            ctx.out / "bodies-e2e.tsv",
            posts=int(rate * duration),
            secret=env.APP_SECRET,
            phone_number_ids=numbers,
        )
        before = env.histogram(
            env.scrape(pipeline.metrics_url("sender")), "hiker_end_to_end_latency_seconds"
        )[0]
        report = run_loadgen(
            ctx,
            pipeline.webhook_url,
            body_file,
            rate=rate,
            duration=duration,
            records=True,
            name="e2e-loadgen",
        )
        sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
        deadline = time.monotonic() + 60
        while pipeline.sent_count() < len(sent_at) and time.monotonic() < deadline:
            time.sleep(0.5)
        accepted = pipeline.sent()
        latencies = [
            m["accepted_at"] - sent_at[m["to"]]
            for m in accepted
            if m["to"] in sent_at and m["text"] == "hello to you too"
        ]
        after = env.histogram(
            env.scrape(pipeline.metrics_url("sender")), "hiker_end_to_end_latency_seconds"
        )[0]
        delta = env.histogram_delta(after, before)
    summary = report["summary"]
    return {
        "rate": rate,
        "seconds": duration,
        "phone_number_ids": len(numbers),
        "pacing_per_number": 80,
        "webhooks_ok": summary["ok"],
        "replies_accepted": len(latencies),
        "lost": summary["ok"] - len(latencies),
        "p50_ms": round((_pct(latencies, 0.5) or 0) * 1000, 1),
        "p99_ms": round((_pct(latencies, 0.99) or 0) * 1000, 1),
        "max_ms": round(max(latencies, default=0) * 1000, 1),
        "webhook_p50_ms": round(summary["p50_ms"], 2),
        "webhook_p99_ms": round(summary["p99_ms"], 2),
        "sender_histogram_p50_ms": _ms(env.histogram_quantile(delta, 0.5)),
        "sender_histogram_p99_ms": _ms(env.histogram_quantile(delta, 0.99)),
        "generator_cpu_share": round(summary["generator_cpu_share"], 3),
        "generator_lag_p99_ms": round(summary["generator_lag_p99_ms"], 2),
        "log_problems": pipeline.log_problems,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# --- timers -----------------------------------------------------------------------------------


def timers(ctx: Context) -> dict[str, Any]:
    """100,000 pending timers coming due at 1,000/s; then a smaller set at half that rate, to
    show the lateness where the machine is not saturated."""
    result = _timers_run(ctx, 10_000 if ctx.quick else 100_000, 1000.0, "logs-timers")
    slower = _timers_run(ctx, 5_000 if ctx.quick else 30_000, 500.0, "logs-timers-500")
    keep = ("timers", "due_rate_per_s", "fired_per_s_while_due", "lateness_p50_ms")
    keep += ("lateness_p99_ms", "due_to_graph_p50_ms", "due_to_graph_p99_ms", "followups_sent")
    keep += ("followups_expected", "followups_to_superseded_users", "other_graph_calls")
    result["slower"] = {k: slower[k] for k in keep}
    return result


def _timers_run(ctx: Context, count: int, due_rate: float, logs: str) -> dict[str, Any]:
    import redis

    from hiker.core import topology
    from hiker.core.contracts import IdleTimerStarted

    superseded_every = 10
    idle = 600.0  # the configured idle timeout: superseding messages' own timers never fire here
    pnid = bodies.PHONE_NUMBER_ID
    run = f"{time.time_ns() % 10**9:09d}"
    users = [f"1{run[:4]}{i:010d}" for i in range(count)]
    wamids = [f"wamid.TIMER{run}{i:010d}" for i in range(count)]
    result: dict[str, Any] = {"timers": count, "due_rate_per_s": due_rate}
    pipeline = Pipeline(Isolation(), ctx.out / logs, idle_timeout=idle, prefetch=ctx.prefetch)
    with pipeline.iso as iso, pipeline:
        wait_spec = topology.timer_wait_queue(topology.delay_ms(idle))
        time.sleep(1)
        queues_before = iso.queues()
        node_before = env.node_memory_total()
        now = time.time()
        # The state conversation checks a fired timer against: these wamids are the latest.
        client = redis.Redis.from_url(env.REDIS_URL)
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            key = f"{iso.redis_prefix}conv:{pnid}:{users[i]}"
            pipe.hset(
                key,
                mapping={
                    "last_wamid": wamids[i],
                    "last_received_at": repr(now - 1),
                    "window_opened_at": str(int(now)),
                },
            )
            pipe.pexpire(key, 2 * 3600 * 1000)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        client.close()
        lead = count / 2500 + 25
        first_due = time.time() + lead
        dues = [first_due + i / due_rate for i in range(count)]
        log(
            f"timers: publishing {count} timers into {wait_spec.name} "
            f"(first due in {lead:.0f}s, then {due_rate:.0f}/s)"
        )
        started = time.time()
        min_margin = asyncio.run(
            _publish_timers(
                iso.amqp_url, wait_spec, pnid, users, wamids, dues, now, IdleTimerStarted
            )
        )
        result["publish_seconds"] = round(time.time() - started, 1)
        result["min_margin_before_due_s"] = round(min_margin, 2)
        queues_after = iso.queues()
        node_after = env.node_memory_total()
        q_before = queues_before.get(wait_spec.name, {"memory": 0, "messages": 0})
        q_after = queues_after[wait_spec.name]
        result["wait_queue_messages"] = q_after["messages"]
        result["queue_memory_bytes_per_timer"] = round(
            (q_after["memory"] - q_before["memory"]) / count, 1
        )
        if node_before and node_after:
            result["node_memory_bytes_per_timer"] = round((node_after - node_before) / count, 1)
        # Supersede every 10th user by a newer message through ingress, before its timer is due.
        superseded_users = users[::superseded_every]
        sup_file = ctx.out / "bodies-supersede.tsv"
        _write_user_bodies(sup_file, superseded_users, pnid, "thanks")
        sup_rate = 1000.0
        sup = run_loadgen(
            ctx,
            pipeline.webhook_url,
            sup_file,
            rate=sup_rate,
            duration=len(superseded_users) / sup_rate,
            name="timers-supersede",
        )
        result["superseding_webhooks_ok"] = sup["summary"]["ok"]
        result["superseded_finished_before_first_due_s"] = round(first_due - time.time(), 1)
        # Let them all come due, then drain.
        conv_metrics = pipeline.metrics_url("conversation")
        deadline = dues[-1] + (30 if ctx.quick else 90)
        fired = 0.0
        samples: list[dict[str, Any]] = []
        while time.time() < first_due - 1:
            time.sleep(0.2)
        cpu_before = _cpu_snapshot(pipeline)
        cpu_started = time.time()
        while time.time() < deadline:
            fired = env.metric_value(env.scrape(conv_metrics), "hiker_timers_fired_total") or 0
            if fired >= count:
                break
            if time.time() > first_due - 2:
                # Where timers wait while they fire: still in the wait queue (broker expiry or
                # dead-lettering behind) or in the fired queue (conversation behind)?
                depth = iso.depths(
                    wait_spec.name,
                    topology.CONVERSATION_TIMERS_QUEUE,
                    topology.SENDER_OUTBOX_QUEUE,
                )
                samples.append(
                    {
                        "t_after_first_due": round(time.time() - first_due, 1),
                        "should_have_fired": max(
                            0, min(count, int((time.time() - first_due) * due_rate))
                        ),
                        "fired_metric": int(fired),
                        "wait_queue": depth[wait_spec.name],
                        "fired_queue": depth[topology.CONVERSATION_TIMERS_QUEUE],
                        "outbox": depth[topology.SENDER_OUTBOX_QUEUE],
                    }
                )
            time.sleep(1)
        result["samples"] = samples
        result["fired_per_s_while_due"] = round(fired / max(1e-9, time.time() - first_due), 1)
        result["cpu_while_due"] = _cpu_report(
            cpu_before, _cpu_snapshot(pipeline), time.time() - cpu_started, int(fired)
        )
        expected_followups = count - len(superseded_users)
        deadline = time.time() + 60
        while pipeline.sent_count() < expected_followups and time.time() < deadline:
            time.sleep(1)
        time.sleep(2)
        text = env.scrape(conv_metrics)
        buckets, _, _ = env.histogram(text, "hiker_timer_lateness_seconds")
        accepted = pipeline.sent()
    due_of = {users[i]: dues[i] for i in range(count)}
    followups = [m for m in accepted if m["text"] == "are you there"]
    to_graph = [m["accepted_at"] - due_of[m["to"]] for m in followups if m["to"] in due_of]
    superseded_set = set(superseded_users)
    result.update(
        {
            "fired": int(fired),
            "superseded_metric": int(env.metric_value(text, "hiker_timers_superseded_total") or 0),
            "superseded_expected": len(superseded_users),
            "followups_sent": len(followups),
            "followups_expected": expected_followups,
            "followups_to_superseded_users": sum(1 for m in followups if m["to"] in superseded_set),
            "other_graph_calls": len(accepted) - len(followups),
            "lateness_buckets": buckets,
            "lateness_p50_ms": _ms(env.histogram_quantile(buckets, 0.5)),
            "lateness_p99_ms": _ms(env.histogram_quantile(buckets, 0.99)),
            "due_to_graph_p50_ms": _ms(_pct(to_graph, 0.5)),
            "due_to_graph_p99_ms": _ms(_pct(to_graph, 0.99)),
            "due_to_graph_max_ms": _ms(max(to_graph, default=0.0)),
            "log_problems": pipeline.log_problems,
        }
    )
    return result


def _write_user_bodies(path: Path, users: list[str], pnid: str, text: str) -> None:
    import secrets

    from hiker.core.signature import sign
    from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

    prefix = "wamid.SUP" + secrets.token_hex(6).upper()
    lines = []
    for i, user in enumerate(users):
        body = encode(
            webhook_body(
                messages_change(
                    [text_message(user, text, wamid=f"{prefix}{i:010d}")], phone_number_id=pnid
                )
            )
        )
        lines.append(f"{user}\t{sign(env.APP_SECRET.encode(), body)}\t{body.decode()}")
    path.write_text("\n".join(lines) + "\n")


async def _publish_timers(
    url: str,
    spec: Any,
    pnid: str,
    users: list[str],
    wamids: list[str],
    dues: list[float],
    now: float,
    contract: Any,
) -> float:
    import aio_pika

    connection = await aio_pika.connect(url)
    min_margin = float("inf")
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))
        window = 2000
        for start in range(0, len(users), window):
            publishes = []
            stamp = time.time()
            for i in range(start, min(start + window, len(users))):
                timer = contract(
                    phone_number_id=pnid,
                    user=users[i],
                    wamid=wamids[i],
                    scheduled_at=now,
                    due_at=dues[i],
                    message_timestamp=int(now),
                )
                expiration_ms = max(1, int((dues[i] - stamp) * 1000))
                min_margin = min(min_margin, dues[i] - stamp)
                publishes.append(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            timer.to_bytes(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            type=contract.__name__,
                            correlation_id=wamids[i],
                            expiration=expiration_ms / 1000,
                        ),
                        routing_key=spec.name,
                    )
                )
            await asyncio.gather(*publishes)
    finally:
        await connection.close()
    return min_margin


# --- sender -----------------------------------------------------------------------------------


def sender(ctx: Context) -> dict[str, Any]:
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
            ) as pipeline,
        ):
            pipeline.services.pop("sender").stop()  # declared the topology; refill while away
            asyncio.run(_publish_sends(iso.amqp_url, count))
            started = time.time()
            service = pipeline.start_sender()
            cpu0 = service.cpu_seconds()
            deadline = time.time() + count / (rate or 500) + 60
            while pipeline.sent_count() < count and time.time() < deadline:
                time.sleep(0.5)
            cpu = service.cpu_seconds() - cpu0
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


async def _publish_sends(url: str, count: int) -> None:
    """``count`` SendMessage commands, as conversation publishes them."""
    import secrets

    from hiker.core import topology
    from hiker.core.contracts import SendMessage

    run = secrets.token_hex(4)

    def command(i: int) -> tuple[SendMessage, str, str]:
        sent = SendMessage(
            idempotency_key=f"bench:{run}:{i}",
            phone_number_id=bodies.PHONE_NUMBER_ID,
            to=f"1555{i:09d}",
            text="hello to you too",
            kind="reply",
            correlation_id=f"wamid.BENCH{run}{i}",
            origin_received_at=time.time(),
        )
        return sent, sent.idempotency_key, sent.correlation_id

    await _publish_contracts(url, topology.COMMANDS_EXCHANGE, topology.RK_SEND, count, command)


async def _publish_contracts(
    url: str, exchange: str, routing_key: str, count: int, make: Callable[[int], Published]
) -> None:
    """Publish ``make(0..count-1)`` with confirms through the services' own Broker, 2,000 at
    a time; ``make`` gives the contract, its message id and its correlation id."""
    from hiker.core import topology
    from hiker.core.broker import Broker

    broker = Broker(url, client_name="bench-publisher")
    await broker.connect(topology.Topology(topology.EXCHANGES))
    try:
        for start in range(0, count, 2000):
            batch = [make(i) for i in range(start, min(start + 2000, count))]
            await asyncio.gather(
                *(
                    broker.publish(
                        exchange,
                        routing_key,
                        contract.to_bytes(),
                        type_name=contract.type_name(),
                        message_id=message_id,
                        correlation_id=correlation_id,
                    )
                    for contract, message_id, correlation_id in batch
                )
            )
    finally:
        await broker.close()


def conversation(ctx: Context) -> dict[str, Any]:
    """Conversation alone draining a backlog of ``hello`` messages: its capacity per core.

    The closed-loop CPU tables divide every process's CPU by the webhooks taken in, while the
    consumers finish only part of them within the phase; this measures what one processed
    message costs conversation (reply and timer published with confirms, claim confirmed).
    """
    count = 4000 if ctx.quick else 20000
    with (
        Isolation() as iso,
        Pipeline(
            iso, ctx.out / "logs-conversation", with_ingress=False, with_sender=False
        ) as pipeline,
    ):
        pipeline.services.pop("conversation").stop()  # declared the topology; fill while away
        asyncio.run(_publish_messages(iso.amqp_url, count))
        service = pipeline.start_conversation()
        cpu0, started = service.cpu_seconds(), time.monotonic()
        samples: list[tuple[float, int]] = []
        deadline = started + count / 200 + 60
        while time.monotonic() < deadline:
            depth = iso.depths(INBOUND)[INBOUND] or 0
            samples.append((time.monotonic(), depth))
            if depth == 0:
                break
            time.sleep(0.25)
        cpu = service.cpu_seconds() - cpu0
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


INBOUND = "hiker.conversation.inbound"


async def _publish_messages(url: str, count: int) -> None:
    """``count`` MessageReceived ``hello`` events from as many users, as ingress publishes them."""
    import secrets

    from hiker.core import topology
    from hiker.core.contracts import MessageReceived

    run = secrets.token_hex(4)

    def message(i: int) -> tuple[MessageReceived, str, str]:
        event = MessageReceived(
            wamid=f"wamid.BENCH{run}{i}",
            phone_number_id=bodies.PHONE_NUMBER_ID,
            user=f"1555{i:09d}",
            message_type="text",
            text="hello",
            timestamp=int(time.time()),
            received_at=time.time(),
        )
        return event, event.wamid, event.wamid

    await _publish_contracts(
        url, topology.INBOUND_EXCHANGE, f"{topology.RK_MESSAGE_PREFIX}.text", count, message
    )


# --- profile ----------------------------------------------------------------------------------


def profile(ctx: Context) -> dict[str, Any]:
    """py-spy on every service at once while the whole pipeline takes a steady 600 webhooks/s.

    A steady load below saturation, not a closed loop: each profile then shows what one message
    costs that service, not which process won the fight for the two cores.
    """
    duration = ctx.seconds(8, 20)
    rate = 600.0
    py_spy = ctx.tools_python.parent / "py-spy"
    result: dict[str, Any] = {"rate": rate, "services": {}}
    with (
        Isolation() as iso,
        Pipeline(iso, ctx.out / "logs-profile") as pipeline,
    ):
        time.sleep(1)
        spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name in ("ingress", "conversation", "sender"):
            raw = ctx.out / f"profile-{name}.txt"
            argv = [str(py_spy), "record", "--pid", str(pipeline.services[name].pid)]
            argv += ["--duration", str(int(duration - 2)), "--rate", "100"]
            argv += ["--format", "raw", "--output", str(raw)]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spies[name] = (spy, raw)
        result["load"] = _fixed_rate(
            ctx, pipeline.webhook_url, rate, duration, "profile-fixed", pipeline
        )
        for name, (spy, raw) in spies.items():
            spy.wait(60)
            if raw.exists():
                result["services"][name] = summarize_profile(raw) | {"raw_profile": str(raw)}
    return result


def summarize_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function, and per area, from py-spy's collapsed stacks."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_time[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count
        areas[_area(frames)] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_pct": share(self_time),
        "inclusive_pct": share(inclusive),
        "areas_pct": share(areas),
    }


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" → "func (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({tail})"


# Where a sample's CPU went: the library of the innermost frame that belongs to one of these.
_AREAS = (
    ("signature (hmac)", ("hiker/core/signature.py", "hmac.py")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/",)),
    ("aio-pika/aiormq/pamqp", ("aio_pika/", "aiormq/", "pamqp/")),
    ("redis client", ("redis/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/", "pythonjsonlogger", "hiker/core/observability.py")),
    ("aiohttp", ("aiohttp/", "multidict/", "yarl/")),
    ("hiker code", ("hiker/",)),
    ("asyncio / event loop", ("asyncio/", "uvloop/", "selectors.py")),
)


def _area(frames: list[str]) -> str:
    """The area of the innermost frame (leaf first) that belongs to one of ``_AREAS``."""
    for frame in reversed(frames):
        for area, needles in _AREAS:
            if any(n in frame for n in needles):
                return area
    return "other"


SCENARIOS = {
    "ingress": ingress,
    "pywa": pywa,
    "e2e": e2e,
    "timers": timers,
    "sender": sender,
    "conversation": conversation,
    "profile": profile,
}
