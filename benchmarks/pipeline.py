"""Hiker's services for one isolation: graph mock, conversation, sender and ingress, each its own
process of ``python -m hiker <service>``.

The pipeline's services run the code of the ``hiker`` package this harness imported (the
current tree, or a baseline's when ``--baseline`` put that first on PYTHONPATH), so that what
the harness pre-loads and what the services read are the same version. The Graph mock is the
test bench, not the thing measured: it always runs the current tree's code, for both sides.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import processes, prometheus
from benchmarks.isolation import REDIS_URL, Isolation
from benchmarks.processes import ROOT, Service, free_port, log

APP_SECRET = "bench-app-secret-0123456789abcdef"
ACCESS_TOKEN = "bench-access-token-" + "0123456789abcdef" * 3
VERIFY_TOKEN = "bench-verify-token"
BENCH_SERVICES = ROOT / "services"
REPLY_TEXT = "hello to you too"


@functools.cache
def services_dir() -> Path:
    """Where the ``hiker`` package this process imports lives (its parent directory)."""
    import hiker

    return Path(hiker.__file__).resolve().parent.parent


@functools.cache
def resolved_hiker(path: Path) -> str:
    """``hiker.__file__`` as a service started with ``PYTHONPATH=path`` resolves it.

    Logged once per side: the proof that the services really run that side's code (an editable
    install elsewhere must not win over PYTHONPATH).
    """
    probe = subprocess.run(
        [sys.executable, "-c", "import hiker; print(hiker.__file__)"],
        env={**os.environ, "PYTHONPATH": str(path)},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    resolved = probe.stdout.strip()
    if not Path(resolved).resolve().is_relative_to(path.resolve()):
        raise RuntimeError(f"services would run {resolved}, not the code in {path}")
    log(f"services run hiker from {resolved}")
    return resolved


# ``--set`` settings: given to every Hiker service this harness starts, or to one service when
# the name is prefixed by it (``ingress.HIKER_PUBLISH_LINGER_MS``).
SERVICE_SETTINGS: dict[str, str] = {}


def settings_for(service: str) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for name, value in SERVICE_SETTINGS.items():
        target, dot, variable = name.rpartition(".")
        if not dot:
            chosen[name] = value
        elif target == service:
            chosen[variable] = value
    return chosen


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
            **settings_for(service),
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
        return self._start("graph-mock", env, code=BENCH_SERVICES)

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

    def _start(
        self, name: str, env: dict[str, str], nice: int = 0, code: Path | None = None
    ) -> Service:
        code = code or services_dir()
        resolved_hiker(code)
        argv = [sys.executable, "-m", "hiker", name]
        if nice:
            argv = ["nice", "-n", str(nice), *argv]
        service = processes.start(
            name,
            argv,
            env | {"PYTHONPATH": str(code)},
            log_dir=self.log_dir,
            ready_url=self._ready(name),
        )
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
        """Every message the Graph mock accepted: ``to``, ``text``, ``accepted_at``..."""
        return graph_mock_messages(self.graph_url)

    def sent_count(self) -> int:
        text = prometheus.scrape(self.metrics_url("graph-mock"))
        return int(prometheus.metric_value(text, "hiker_graph_mock_messages_total") or 0)

    def forget_sent(self) -> None:
        forget_graph_mock_messages(self.graph_url)


def graph_mock_messages(graph_url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{graph_url}/_mock/messages", timeout=60) as response:
        result: list[dict[str, Any]] = json.loads(response.read())
    return result


def forget_graph_mock_messages(graph_url: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{graph_url}/_mock/messages", method="DELETE")
    with urllib.request.urlopen(request, timeout=60):
        pass


def log_problems(service: Service) -> dict[str, int]:
    """WARNING and worse JSON log events of ``service``: retries, parked sends, errors."""
    counts: dict[str, int] = {}
    try:
        lines = service.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") in ("INFO", "DEBUG"):
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
