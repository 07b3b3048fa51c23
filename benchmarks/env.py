"""Isolation and process plumbing: a vhost, a Redis prefix and free ports per run; services as
child processes that are always stopped, and the vhost and keys always deleted, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"
PROJECT_PYTHON = Path(sys.executable)
HIKER = PROJECT_PYTHON.parent / "hiker"
TOOLS_VENV = RESULTS_DIR / "venv"
APP_SECRET = "bench-app-secret"
ACCESS_TOKEN = "bench-access-token"
VERIFY_TOKEN = "bench-verify-token"
AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1:5672")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Ports `make run` may hold: never used here.
_RESERVED = {8080, 8090, 9101, 9102, 9103, 9104}


def load_tool_prefix() -> list[str]:
    """Run load tools one nice level group ahead (-5) when allowed: on 2 shared cores a starved
    generator would otherwise add its own lag to every latency (it plays Meta, which does not
    share our CPUs). Services keep the default priority."""
    return ["nice", "-n", "-5"] if os.geteuid() == 0 else []


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _RESERVED:
            return port


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def tools_python() -> Path:
    """The benchmark venv (pywa, uvicorn, py-spy, uvloop), created on first use."""
    python = TOOLS_VENV / "bin" / "python"
    stamp = TOOLS_VENV / ".installed"
    requirements = ROOT / "benchmarks" / "requirements-pywa.txt"
    if stamp.exists() and stamp.read_text() == requirements.read_text():
        return python
    log(f"installing the benchmark tools into {TOOLS_VENV} (once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        check=True,
        timeout=900,
    )
    stamp.write_text(requirements.read_text())
    return python


@dataclass
class Isolation:
    """One vhost and one Redis prefix, deleted on exit."""

    name: str = field(default_factory=lambda: f"hiker-bench-{secrets.token_hex(4)}")

    @property
    def vhost(self) -> str:
        return self.name

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{AMQP_HOST}/{self.vhost}"

    @property
    def redis_prefix(self) -> str:
        return f"{self.name}:"

    def __enter__(self) -> Isolation:
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        _CLEANUPS.append(self.cleanup)
        return self

    def __exit__(self, *_: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        if self.cleanup in _CLEANUPS:
            _CLEANUPS.remove(self.cleanup)
        with contextlib.suppress(Exception):
            rabbitmqctl("delete_vhost", self.vhost, timeout=120)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.redis_prefix}*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
            client.close()

    def depths(self, *names: str) -> dict[str, int | None]:
        """Ready messages per queue, read live over AMQP (passive declare).

        ``rabbitmqctl`` boots an Erlang VM per call (half a CPU-second): sampling with it every
        second would take a quarter of a 2-core machine away from what is being measured.
        """

        async def read() -> dict[str, int | None]:
            import aio_pika

            connection = await aio_pika.connect(self.amqp_url)
            try:
                result: dict[str, int | None] = {}
                for name in names:
                    channel = await connection.channel()
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                        result[name] = queue.declaration_result.message_count
                    except aio_pika.exceptions.ChannelClosed:
                        result[name] = None
                return result
            finally:
                await connection.close()

        import asyncio

        return asyncio.run(read())

    def queues(self) -> dict[str, dict[str, int]]:
        """name → {messages, memory} from ``rabbitmqctl list_queues``."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages", "memory", "--formatter", "json"
        )
        return {
            q["name"]: {"messages": int(q["messages"] or 0), "memory": int(q["memory"] or 0)}
            for q in json.loads(out or "[]")
        }


def node_memory_total() -> int | None:
    """The broker node's total memory (bytes), from ``rabbitmq-diagnostics memory_breakdown``."""
    try:
        done = subprocess.run(
            [
                "rabbitmq-diagnostics",
                "-q",
                "memory_breakdown",
                "--unit",
                "bytes",
                "--formatter",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        data = json.loads(done.stdout)
        # {"category": {"bytes": N, "percentage": P}, ...}: the total is their sum.
        return sum(int(v["bytes"]) for v in data.values() if isinstance(v, dict) and "bytes" in v)
    except Exception:
        return None


# Cleanups run on normal exit, exceptions, Ctrl-C and SIGTERM.
_CLEANUPS: list[Any] = []
_PROCESSES: list[subprocess.Popen[bytes]] = []


def _terminate_all(*_: object) -> None:
    for proc in list(_PROCESSES):
        _stop(proc)
    for cleanup in list(reversed(_CLEANUPS)):
        with contextlib.suppress(Exception):
            cleanup()


def install_signal_handlers() -> None:
    def on_signal(signum: int, _: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    import atexit

    atexit.register(_terminate_all)


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    if proc in _PROCESSES:
        _PROCESSES.remove(proc)


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready_url: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        _stop(self.proc)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of ``pid`` so far (from /proc); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def broker_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM, so that its share of the two cores is reported."""
    done = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True)
    pids = [int(x) for x in done.stdout.split()]
    return pids[0] if pids else None


def start(
    name: str,
    argv: list[str],
    env: dict[str, str],
    *,
    log_dir: Path,
    ready_url: str | None = None,
    ready_timeout: float = 60.0,
) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    full_env.update(env)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    _PROCESSES.append(proc)
    service = Service(name, proc, log_path, ready_url)
    if ready_url:
        wait_ready(service, ready_url, ready_timeout)
    return service


def wait_ready(service: Service, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            tail = service.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{service.name} exited ({service.proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready at {url} after {timeout}s")


def http_json(method: str, url: str, body: Any = None, timeout: float = 60) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@dataclass
class Pipeline:
    """graph-mock, conversation, sender and (optionally) ingress for one isolation."""

    iso: Isolation
    log_dir: Path
    send_rate: float = 0.0
    idle_timeout: float = 600.0
    with_ingress: bool = True
    with_sender: bool = True
    with_conversation: bool = True
    prefetch: int | None = None  # None: the service default (HIKER_PREFETCH unset)
    # Run conversation and sender at this nice level (ingress keeps the CPU when it competes).
    consumer_nice: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    # WARNING/ERROR log events of every service, counted by (service, level, event, error).
    log_problems: dict[str, int] = field(default_factory=dict)

    @property
    def graph_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['graph']}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}/webhook"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service + '_metrics']}/metrics"

    def common_env(self, service: str) -> dict[str, str]:
        return {
            "HIKER_AMQP_URL": self.iso.amqp_url,
            "HIKER_REDIS_URL": REDIS_URL,
            "HIKER_REDIS_PREFIX": self.iso.redis_prefix,
            "HIKER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
            "HIKER_METRICS_HOST": "127.0.0.1",
            "HIKER_METRICS_PORT": str(self.ports[service + "_metrics"]),
        }

    def __enter__(self) -> Pipeline:
        for key in (
            "graph",
            "http",
            "graph-mock_metrics",
            "ingress_metrics",
            "conversation_metrics",
            "sender_metrics",
        ):
            self.ports[key] = free_port()
        try:
            self.start_graph_mock()
            if self.with_conversation:
                self.start_conversation()
            if self.with_sender:
                self.start_sender()
            if self.with_ingress:
                self.start_ingress()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service + '_metrics']}/readyz"

    def start_graph_mock(self) -> Service:
        env = self.common_env("graph-mock") | {
            "HIKER_GRAPH_MOCK_HOST": "127.0.0.1",
            "HIKER_GRAPH_MOCK_PORT": str(self.ports["graph"]),
            "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
            # One log line per accepted message would make the mock the bottleneck.
            "HIKER_LOG_LEVEL": "WARNING",
        }
        return self._start("graph-mock", env)

    def start_conversation(self) -> Service:
        return self._start_consumer(
            "conversation", {"HIKER_IDLE_TIMEOUT_SECONDS": str(self.idle_timeout)}
        )

    def start_sender(self) -> Service:
        return self._start_consumer(
            "sender",
            {
                "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
                "HIKER_GRAPH_BASE_URL": self.graph_url,
                "HIKER_SEND_RATE_PER_SECOND": str(self.send_rate),
            },
        )

    def _start_consumer(self, name: str, extra: dict[str, str]) -> Service:
        """Conversation or sender: the shared prefetch and nice level apply to both."""
        env = self.common_env(name) | extra
        if self.prefetch:
            env["HIKER_PREFETCH"] = str(self.prefetch)
        return self._start(name, env, nice=self.consumer_nice)

    def start_ingress(self) -> Service:
        env = self.common_env("ingress") | {
            "HIKER_HTTP_HOST": "127.0.0.1",
            "HIKER_HTTP_PORT": str(self.ports["http"]),
            "HIKER_APP_SECRET": APP_SECRET,
            "HIKER_VERIFY_TOKEN": VERIFY_TOKEN,
        }
        return self._start("ingress", env)

    def _start(self, name: str, env: dict[str, str], nice: int = 0) -> Service:
        argv = [str(HIKER), name]
        if nice:
            argv = ["nice", "-n", str(nice), *argv]
        service = start(name, argv, env, log_dir=self.log_dir, ready_url=self._ready(name))
        self.services[name] = service
        return service

    def __exit__(self, *_: object) -> None:
        # Ingress first (nothing new comes in), the mock last (the sender may still be calling).
        for name in ("ingress", "conversation", "sender", "graph-mock"):
            service = self.services.pop(name, None)
            if service is not None:
                service.stop()
                self.log_problems.update(log_problems(service))

    def sent(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = http_json("GET", f"{self.graph_url}/_mock/messages")
        return result

    def sent_count(self) -> int:
        text = scrape(self.metrics_url("graph-mock"))
        return int(metric_value(text, "hiker_graph_mock_messages_total") or 0)


def log_problems(service: Service) -> dict[str, int]:
    """WARNING and worse JSON log events of ``service``: retries, parked sends, errors."""
    counts: dict[str, int] = {}
    try:
        lines = service.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        if '"level": "INFO"' in line or '"level": "DEBUG"' in line or not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        key = " ".join(
            str(x)
            for x in (
                service.name,
                record.get("level"),
                str(record.get("event"))[:80],
                record.get("error"),
            )
            if x
        )
        counts[key] = counts.get(key, 0) + 1
    return counts


def metric_value(text: str, name: str, labels: str | None = None) -> float | None:
    total = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, label_part = key.partition("{")
        if metric != name:
            continue
        if labels is not None and labels not in label_part:
            continue
        total = (total or 0.0) + float(value)
    return total


def histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative buckets [(le, count)], count and sum of a Prometheus histogram."""
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
        elif line.startswith(name + "_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            total = float(line.rsplit(" ", 1)[1])
    return sorted(buckets), count, total


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style linear interpolation inside the bucket holding quantile ``q``."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


def histogram_delta(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    base = dict(before)
    return [(le, count - base.get(le, 0.0)) for le, count in after]
