"""What every scenario measures with: the run's context, CPU of each process over a window,
the load tools (wrk closed loop, loadgen open or closed loop), and replies seen by the Graph mock.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bodies, processes, wrk
from benchmarks.isolation import REDIS_URL
from benchmarks.pipeline import APP_SECRET, Pipeline, graph_mock_messages
from benchmarks.processes import CpuTimes, log


@dataclass
class Context:
    quick: bool
    out: Path
    tools_python: Path
    connections: int = 64
    prefetch: int | None = None  # conversation's and sender's HIKER_PREFETCH; None: default
    # "baseline" when this run measures the --baseline commit: what does not depend on Hiker's
    # code (pywa, the seed design) is measured on the current side only.
    side: str = "current"

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full


def pct(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# --- CPU of every process over a window -------------------------------------------------------

# The shared servers: their pids do not change during a run.
_SERVER_PIDS: dict[str, int | None] = {}


def server_pids() -> dict[str, int]:
    if not _SERVER_PIDS:
        _SERVER_PIDS["rabbitmq"] = processes.broker_pid()
        _SERVER_PIDS["redis"] = processes.redis_pid(REDIS_URL)
    return {name: pid for name, pid in _SERVER_PIDS.items() if pid is not None}


def cpu_snapshot(
    pipeline: Pipeline | None = None, others: Mapping[str, processes.Service] | None = None
) -> dict[str, CpuTimes]:
    """CPU so far of the pipeline's services, ``others``, the RabbitMQ node and Redis."""
    services = dict(pipeline.services) if pipeline else {}
    services.update(others or {})
    snapshot = {name: s.cpu() for name, s in services.items()}
    for name, pid in server_pids().items():
        snapshot[name] = processes.cpu_times(pid)
    return snapshot


def cpu_used(before: dict[str, CpuTimes], after: dict[str, CpuTimes]) -> dict[str, CpuTimes]:
    return {name: after.get(name, start) - start for name, start in before.items()}


def cpu_report(
    before: dict[str, CpuTimes], after: dict[str, CpuTimes], seconds: float, messages: int
) -> dict[str, Any]:
    """Cores and CPU µs per message of each process over a window of ``seconds``."""
    report: dict[str, Any] = {}
    for name, used in cpu_used(before, after).items():
        report[name] = {
            "cores": round(used.total / seconds, 3) if seconds else None,
            "cpu_us_per_message": round(used.total / messages * 1e6, 1) if messages else None,
        }
    return report


def background_cores(seconds: float = 2.0) -> dict[str, float]:
    """RabbitMQ's and Redis's CPU while this run sends them nothing: what others' work on the
    shared servers adds to every window measured on them."""
    pids = server_pids()
    before = {name: processes.cpu_times(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {
        name: round((processes.cpu_times(pid) - before[name]).total / seconds, 3)
        for name, pid in pids.items()
    }


# --- load tools -------------------------------------------------------------------------------


def run_loadgen(
    ctx: Context,
    url: str,
    body_file: Path,
    *,
    rate: float | None = None,
    duration: float | None = None,
    concurrency: int | None = None,
    count: int | None = None,
    records: bool = False,
    name: str = "loadgen",
) -> dict[str, Any]:
    """loadgen.py as its own process: open loop with ``rate`` and ``duration``, closed loop
    with ``concurrency`` and ``count``. Returns its report (summary, and records if asked)."""
    report_path = ctx.out / f"{name}.json"
    argv = [
        *processes.load_tool_prefix(),
        str(ctx.tools_python),
        str(Path(__file__).parent / "loadgen.py"),
        "--url",
        url,
        "--bodies",
        str(body_file),
        "--out",
        str(report_path),
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency), "--count", str(count)]
        limit = 600.0
    else:
        argv += ["--rate", str(rate), "--duration", str(duration)]
        limit = (duration or 0) + 120
    if records:
        argv.append("--records")
    subprocess.run(argv, check=True, timeout=limit, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(report_path.read_text())
    report_path.unlink()
    return report


SHAPES = (1, 10, 50)


def bodies_for(ctx: Context, per_post: int, duration: float, text: str = "hello") -> Path:
    """Enough unique wamids for the fastest rate wrk could reach; it wraps around if not."""
    max_posts_per_s = {1: 6000, 10: 1200, 50: 300}[per_post]
    posts = int(max_posts_per_s * duration)
    path = ctx.out / f"bodies-{per_post}.tsv"
    return bodies.write_bodies(path, posts=posts, per_post=per_post, text=text, secret=APP_SECRET)


def throughput(
    ctx: Context,
    url: str,
    body_file: Path,
    per_post: int,
    duration: float,
    cpu_of: Callable[[], dict[str, CpuTimes]] | None = None,
) -> dict[str, Any]:
    """wrk, closed loop, for ``duration``: requests per second and latency."""
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
        row["cpu"] = cpu_report(before, cpu_of(), seconds, int(result["requests"] * per_post))
    return row


def pipeline_throughput(
    ctx: Context, pipeline: Pipeline, per_post: int, duration: float
) -> dict[str, Any]:
    """``throughput`` against ``pipeline``'s ingress, with the CPU of every process and, when
    the sender runs, the replies the pipeline completed meanwhile (the rest wait durably)."""
    body_file = bodies_for(ctx, per_post, duration)
    sent_before = pipeline.sent_count()
    row = throughput(
        ctx, pipeline.webhook_url, body_file, per_post, duration, lambda: cpu_snapshot(pipeline)
    )
    if pipeline.with_sender:
        row["replies_per_s"] = round((pipeline.sent_count() - sent_before) / row["seconds"], 1)
    return row


def fixed_rate(
    ctx: Context,
    url: str,
    rate: float,
    duration: float,
    name: str,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    """loadgen at ``rate`` for ``duration``: webhook latency from the scheduled send time."""
    body_file = bodies.write_bodies(
        ctx.out / f"bodies-fixed-{name}.tsv", posts=int(rate * duration), secret=APP_SECRET
    )
    before = cpu_snapshot(pipeline) if pipeline else {}
    summary = run_loadgen(ctx, url, body_file, rate=rate, duration=duration, name=name)["summary"]
    result = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}
    result["body_file"] = str(body_file)
    if pipeline:
        result["cpu"] = cpu_report(
            before, cpu_snapshot(pipeline), summary["elapsed_s"], summary["ok"]
        )
    return result


# --- replies at the Graph mock ------------------------------------------------------------------


def settle_count(pipeline: Pipeline, before: int, limit: float) -> tuple[int, float]:
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


def await_replies(
    pipeline: Pipeline, before: int, expected: int, *, stall: float, limit: float
) -> int:
    """Wait until the Graph mock accepted ``expected`` messages more than ``before``; give up
    when none came for ``stall`` seconds or after ``limit``. Returns how many came.

    Polls the mock's counter (a few hundred bytes of metrics), not its message list, so that
    waiting costs the mock next to nothing and returns within a tenth of a second of the last.
    """
    return wait_for_count(
        lambda: pipeline.sent_count() - before, expected, stall=stall, limit=limit
    )


def wait_for_count(
    count: Callable[[], int], expected: int, *, stall: float, limit: float, poll: float = 0.1
) -> int:
    started = last_change = time.monotonic()
    last = count()
    while last < expected and time.monotonic() - started < limit:
        time.sleep(poll)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= stall:
            log(f"  no new reply for {stall:.0f}s: {last} of {expected}")
            break
    return last


def users_of(body_file: Path) -> set[str]:
    """The users who wrote the webhooks of ``body_file`` (its first column)."""
    return {line.split("\t", 1)[0] for line in body_file.read_text().splitlines() if line}


def replies_to(graph_url: str, users: set[str]) -> Counter[str]:
    """How many messages the Graph mock accepted for each of ``users`` (absent: none)."""
    return Counter(m["to"] for m in graph_mock_messages(graph_url) if m["to"] in users)


def reply_latencies(
    graph_url: str, sent_at: Mapping[str, float], text: str
) -> tuple[list[float], float]:
    """Webhook sent → Graph mock accepted its reply, for every reply whose ``to`` is a key of
    ``sent_at`` (one user per webhook); and when the last of them was accepted."""
    latencies: list[float] = []
    last = 0.0
    for message in graph_mock_messages(graph_url):
        start = sent_at.get(message["to"])
        if start is not None and message["text"] == text:
            latencies.append(message["accepted_at"] - start)
            last = max(last, message["accepted_at"])
    return latencies, last
