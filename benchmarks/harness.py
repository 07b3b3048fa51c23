"""The processes of a benchmark run: Hiker's services as ``python -m hiker <service>``, running
the current tree's code or a baseline commit's, each pipeline in a vhost and Redis prefix of its
own on the local RabbitMQ and Redis, on free ports; their CPU read from /proc. Processes, vhosts
and keys are the tests' own helpers (tests/daemons.py, tests/vhosts.py), and are stopped and
deleted at the end, on failure and Ctrl-C too.

The Graph mock is the test bench, not the thing measured: it always runs the current tree.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.daemons import Daemons
from tests.support import free_port, metric_value
from tests.vhosts import (
    ManagementApi,
    VhostPool,
    local_rabbitmqctl,
    management_url_for,
    vhost_admin,
    vhost_url,
)

from benchmarks.sides import ROOT, Side

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
APP_SECRET = "bench-app-secret-0123456789abcdef"
ACCESS_TOKEN = "bench-access-token-" + "0123456789abcdef" * 3
VERIFY_TOKEN = "bench-verify-token"
REPLY_TEXT = "hello to you too"
FOLLOWUP_TEXT = "are you there"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LOG_FILES: list[Path] = []
# ``--set`` settings: for every Hiker service, or for one (``ingress.HIKER_PUBLISH_LINGER_MS``).
SETTINGS: dict[str, str] = {}


def log(message: str) -> None:
    line = f"[bench {time.strftime('%H:%M:%S')}] {message}"
    print(line, file=sys.stderr, flush=True)
    for path in _LOG_FILES:
        with path.open("a") as handle:
            handle.write(line + "\n")


def log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _LOG_FILES.append(path)


# --- what is stopped and deleted whatever happens ----------------------------------------------

DAEMONS = Daemons()
_vhosts: VhostPool | None = None
_prefixes: list[str] = []


def vhosts() -> VhostPool:
    global _vhosts
    if _vhosts is None:
        admin = vhost_admin(AMQP_URL, rabbitmqctl=local_rabbitmqctl)
        if admin is None:
            raise SystemExit(f"no way to make a vhost on {AMQP_URL}")
        _vhosts = VhostPool(admin, prefix="hiker-bench")
    return _vhosts


def _delete_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(batch), 5000):
            client.unlink(*batch[start : start + 5000])
    finally:
        client.close()


def cleanup() -> None:
    """Stop every process and delete every vhost and key this run made."""
    DAEMONS.stop_all()
    if _vhosts is not None:
        with contextlib.suppress(Exception):
            _vhosts.close()
    while _prefixes:
        with contextlib.suppress(Exception):
            _delete_keys(_prefixes.pop())


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C, so that every ``with`` block and the exit hook clean up;
    only the first signal does, so that a second cannot cut the cleaning short."""
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_signal)
    atexit.register(cleanup)


# --- CPU -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds a process used so far, in user space and in the kernel on its behalf."""

    user: float = 0.0
    system: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def cpu_times(pid: int) -> CpuTimes:
    """utime and stime of ``pid`` from /proc (all its threads); zero when it is gone."""
    try:
        # The command name may hold spaces and parentheses: fields start after the last ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return CpuTimes(int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS)
    except (OSError, IndexError, ValueError):
        return CpuTimes()


def server_pids() -> dict[str, int]:
    """The local RabbitMQ node's Erlang VM (matched by its boot argument: every rabbitmqctl call
    runs a beam.smp whose command line names rabbit too) and Redis, as it reports itself."""
    import redis

    pids: dict[str, int] = {}
    found = subprocess.run(
        ["pgrep", "-f", r"beam\.smp.* -s rabbit boot"], capture_output=True, text=True
    ).stdout.split()
    if found:
        pids["rabbitmq"] = int(found[0])
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(REDIS_URL)
        pids["redis"] = int(client.info("server")["process_id"])
        client.close()
    return pids


def background_cores(seconds: float = 2.0) -> dict[str, float]:
    """RabbitMQ's and Redis's CPU while this run sends them nothing: what others' work on the
    shared servers adds to every window measured on them."""
    pids = server_pids()
    before = {name: cpu_times(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {n: round((cpu_times(p) - before[n]).total / seconds, 3) for n, p in pids.items()}


# --- a pipeline of services ---------------------------------------------------------------------

SERVICES = ("conversation", "sender", "ingress")


@dataclass
class Pipeline:
    """The Graph mock and ``services`` of ``side``, in a vhost and Redis prefix of their own."""

    side: Side
    log_dir: Path
    services: tuple[str, ...] = SERVICES
    env: dict[str, str] = field(default_factory=dict)  # for every Hiker service
    nice: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # What ``python -m`` runs for a service, when not ``hiker <service>`` (a variant of it).
    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    log_problems: dict[str, int] = field(default_factory=dict)
    vhost: str = ""
    prefix: str = field(default_factory=lambda: f"hiker-bench-{uuid.uuid4().hex[:8]}:")

    @property
    def amqp_url(self) -> str:
        return vhost_url(AMQP_URL, self.vhost)

    @property
    def graph_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['graph']}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}/webhook"

    def __enter__(self) -> Pipeline:
        self.vhost = vhosts().take()
        _prefixes.append(self.prefix)
        for key in ("graph", "http", "graph-mock", *SERVICES):
            self.ports[key] = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start("graph-mock")
            for name in self.services:
                self.start(name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        # Ingress first (nothing new comes in), the mock last (the sender may still be calling).
        for name in ("ingress", "conversation", "sender", "graph-mock"):
            self.stop(name)
        vhosts().give_back(self.vhost)
        if self.prefix in _prefixes:
            _prefixes.remove(self.prefix)
            with contextlib.suppress(Exception):
                _delete_keys(self.prefix)

    def _environment(self, name: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("HIKER_") and k != "PYTHONPATH"
        }
        env |= {
            "PYTHONPATH": str(ROOT / "services" if name == "graph-mock" else self.side.services),
            "HIKER_AMQP_URL": self.amqp_url,
            "HIKER_REDIS_URL": REDIS_URL,
            "HIKER_REDIS_PREFIX": self.prefix,
            "HIKER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
            "HIKER_METRICS_HOST": "127.0.0.1",
            "HIKER_METRICS_PORT": str(self.ports[name]),
            "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
            "HIKER_APP_SECRET": APP_SECRET,
            "HIKER_VERIFY_TOKEN": VERIFY_TOKEN,
            "HIKER_GRAPH_BASE_URL": self.graph_url,
            "HIKER_GRAPH_MOCK_HOST": "127.0.0.1",
            "HIKER_GRAPH_MOCK_PORT": str(self.ports["graph"]),
            "HIKER_HTTP_HOST": "127.0.0.1",
            "HIKER_HTTP_PORT": str(self.ports["http"]),
            "HIKER_SEND_RATE_PER_SECOND": "0",
            # One log line per accepted message would make the mock the bottleneck.
            **({"HIKER_LOG_LEVEL": "WARNING"} if name == "graph-mock" else self.env),
        }
        for setting, value in SETTINGS.items():
            target, dot, variable = setting.rpartition(".")
            if name != "graph-mock" and (not dot or target == name):
                env[variable] = value
        return env

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` and wait until it reports ready (connected and consuming)."""
        argv = [sys.executable, "-m", *self.commands.get(name, ("hiker", name))]
        if self.nice.get(name):
            argv = ["nice", "-n", str(self.nice[name]), *argv]
        log_path = self.log_dir / f"{name}.log"
        process = DAEMONS.start(argv, log=log_path, env=self._environment(name), cwd=ROOT)
        self.running[name] = process
        ready = f"http://127.0.0.1:{self.ports[name]}/readyz"
        deadline = time.monotonic() + 60
        while not _answers_200(ready):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not become ready ({process.returncode}):\n{tail}")
            time.sleep(0.2)
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is not None:
            DAEMONS.stop(process, grace=10)
            self._count_log_problems(name)

    def cpu(self, *others: tuple[str, int]) -> dict[str, CpuTimes]:
        """CPU so far of the running services, of ``others`` (name, pid), RabbitMQ and Redis."""
        pids = {name: p.pid for name, p in self.running.items()} | server_pids() | dict(others)
        return {name: cpu_times(pid) for name, pid in pids.items()}

    def metrics(self, name: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/metrics") as answer:
            text: str = answer.read().decode()
        return text

    def wait_queue_memory(self) -> int | None:
        """Bytes the broker holds for the idle timers' wait queues (None: no management API)."""
        api = ManagementApi(management_url_for(AMQP_URL), "guest")
        try:
            queues = api.queues(self.vhost)
        except OSError:
            return None
        waiting = [q for q in queues if q["name"].startswith("hiker.timers.wait.")]
        return sum(int(q.get("memory", 0)) for q in waiting)

    def sent_count(self) -> int:
        """Messages the Graph mock accepted (a few hundred bytes of metrics to read)."""
        return int(metric_value(self.metrics("graph-mock"), "hiker_graph_mock_messages_total"))

    def sent(self) -> list[dict[str, Any]]:
        """Every message the Graph mock accepted: ``to``, ``text``, ``accepted_at``..."""
        with urllib.request.urlopen(f"{self.graph_url}/_mock/messages", timeout=60) as answer:
            result: list[dict[str, Any]] = json.loads(answer.read())
        return result

    def forget_sent(self) -> None:
        request = urllib.request.Request(f"{self.graph_url}/_mock/messages", method="DELETE")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def _count_log_problems(self, name: str) -> None:
        """WARNING and worse JSON log events: retries, parked sends, errors."""
        with contextlib.suppress(OSError):
            for line in (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line) if line.startswith("{") else {}
                    if record and record.get("level") not in ("INFO", "DEBUG"):
                        what = (name, record.get("level"), str(record.get("event"))[:80])
                        key = " ".join(str(x) for x in (*what, record.get("error") or ""))
                        self.log_problems[key.strip()] = self.log_problems.get(key.strip(), 0) + 1


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_for(count: Callable[[], float], expected: float, *, stall: float, limit: float) -> float:
    """Until ``count()`` reaches ``expected``; gives up when it did not move for ``stall``
    seconds or after ``limit``. Returns the last count."""
    started = last_change = time.monotonic()
    last = count()
    while last < expected and time.monotonic() - started < limit:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= stall:
            log(f"  nothing new for {stall:.0f}s: {last:g} of {expected:g}")
            break
    return last
