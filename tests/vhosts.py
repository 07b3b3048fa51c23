"""RabbitMQ vhosts that keep test runs (and benchmark runs) apart: one per test, made through the
management plugin's HTTP API, or through ``rabbitmqctl`` where the plugin is not enabled."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

EVERYTHING = {"configure": ".*", "write": ".*", "read": ".*"}
MANAGEMENT_PORT = 15672


def vhost_url(root: str, vhost: str) -> str:
    """``root`` (an amqp:// URL) pointed at ``vhost``."""
    parts = urllib.parse.urlsplit(root)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def management_url_for(amqp_url: str) -> str:
    """Where the management API of the broker at ``amqp_url`` listens by default."""
    parts = urllib.parse.urlsplit(amqp_url.split(",")[0])
    user = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return f"http://{auth}@{parts.hostname or '127.0.0.1'}:{MANAGEMENT_PORT}/"


class VhostAdmin(Protocol):
    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None: ...


class ManagementApi:
    """Creates and deletes vhosts through the management plugin's HTTP API (a few milliseconds
    per call)."""

    def __init__(self, url: str, user: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port}/api"
        username = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {credentials}"
        self._user = user

    def _call(
        self, method: str, path: str, body: dict[str, str] | None = None, timeout: float = 30
    ) -> Any:
        request = urllib.request.Request(f"{self._base}/{path}", method=method)
        request.add_header("content-type", "application/json")
        request.add_header("authorization", self._authorization)
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(request, data=data, timeout=timeout) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        """The queues of ``vhost`` as the API describes them (name, messages, memory...)."""
        found: list[dict[str, Any]] = self._call(
            "GET", f"queues/{urllib.parse.quote(vhost, safe='')}"
        )
        return found

    def answers(self, within: float = 0.0) -> bool:
        """Whether the API answers (the plugin may start listening a moment after AMQP)."""
        deadline = time.monotonic() + within
        while True:
            try:
                self._call("GET", "overview", timeout=5)
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.5)
            else:
                return True

    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None:
        for vhost in delete:
            self._call("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
        for vhost in create:
            quoted = urllib.parse.quote(vhost, safe="")
            self._call("PUT", f"vhosts/{quoted}", {})
            user = urllib.parse.quote(self._user, safe="")
            self._call("PUT", f"permissions/{quoted}/{user}", EVERYTHING)


class Rabbitmqctl:
    """The fallback where the management plugin is not enabled: ``rabbitmqctl`` run where the
    broker lives. Each call boots an Erlang VM (about half a CPU-second), so this is slow;
    ``rabbitmq-plugins enable rabbitmq_management`` makes it unnecessary."""

    def __init__(self, run: Callable[..., str], user: str) -> None:
        self._run = run
        self._user = user

    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None:
        for vhost in delete:
            self._run("delete_vhost", vhost)
        for vhost in create:
            self._run("add_vhost", vhost)
            self._run("set_permissions", "-p", vhost, self._user, *EVERYTHING.values())


def local_rabbitmqctl(*args: str, timeout: float = 120) -> str:
    """``rabbitmqctl -q args`` against the local broker; waits out a broker whose app is
    briefly stopped (the broker is shared, and some tests stop it)."""
    for attempt in range(8):
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode == 0:
            return done.stdout
        if "app to be running" not in done.stderr:
            break
        time.sleep(1 + attempt)
    message = (done.stderr or done.stdout).strip().splitlines()
    raise RuntimeError(
        f"rabbitmqctl {' '.join(args)}: {message[0] if message else done.returncode}"
    )


class VhostPool:
    """Fresh vhosts, made ahead in batches; a returned vhost is deleted with the next batch or
    when the pool closes. A vhost is never handed out twice."""

    def __init__(self, admin: VhostAdmin, batch: int = 1, prefix: str = "hiker-test") -> None:
        self._admin = admin
        self._batch = batch
        self._prefix = prefix
        self._ready: list[str] = []
        self._used: list[str] = []

    def take(self) -> str:
        if not self._ready:
            fresh = [f"{self._prefix}-{uuid.uuid4().hex[:12]}" for _ in range(self._batch)]
            used, self._used = self._used, []
            self._admin.apply(create=fresh, delete=used)
            self._ready = fresh
        return self._ready.pop()

    def give_back(self, vhost: str) -> None:
        self._used.append(vhost)

    def close(self) -> None:
        leftovers = self._used + self._ready
        self._used, self._ready = [], []
        self._admin.apply(create=[], delete=leftovers)


def vhost_admin(
    amqp_url: str,
    *,
    management_url: str | None = None,
    rabbitmqctl: Callable[..., str] | None = None,
    wait: float = 0.0,
) -> VhostAdmin | None:
    """The management API of the broker at ``amqp_url`` when it answers (within ``wait``
    seconds), else ``rabbitmqctl`` when given; None when neither is at hand."""
    user = urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).username or "guest")
    api = ManagementApi(management_url or management_url_for(amqp_url), user)
    if api.answers(within=wait):
        return api
    if rabbitmqctl is not None:
        return Rabbitmqctl(rabbitmqctl, user)
    return None
