"""Helpers every test tier shares: free ports, Prometheus samples, queue depths and the RabbitMQ
vhosts that keep integration tests apart."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aio_pika

# Shows in the broker's audit log as whoever created and deleted the test vhosts.
ACTING_USER = "hiker-tests"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        sample, _, label_part = key.partition("{")
        if sample != name:
            continue
        got = ",".join(sorted(label_part.rstrip("}").split(","))) if label_part else ""
        if got == wanted:
            return float(value)
    return 0.0


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` right now (a passive declare: nothing is created)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def take_all(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message now in ``queue`` (acked: the test consumes them)."""
    connection = await aio_pika.connect(amqp_url)
    messages = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        while (message := await declared.get(fail=False, no_ack=True)) is not None:
            messages.append(message)
    finally:
        await connection.close()
    return messages


async def queued_contracts(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Every contract waiting in ``queue``, bundles unpacked; the messages stay queued."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        contracts: list[dict[str, Any]] = []
        # Held unacknowledged until the connection closes, which gives them all back.
        while (message := await declared.get(no_ack=False, fail=False)) is not None:
            body = json.loads(message.body)
            contracts.extend(body if isinstance(body, list) else [body])
        return contracts
    finally:
        await connection.close()


def vhost_url(root: str, vhost: str) -> str:
    """``root`` (an amqp:// URL) pointed at ``vhost``."""
    parts = urllib.parse.urlsplit(root)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def _erlang_binaries(names: Sequence[str]) -> str:
    for name in names:
        # The names are ours; anything that would need escaping in Erlang is a bug here.
        assert name.replace("-", "").replace("_", "").replace(".", "").isalnum(), name
    return "[" + ",".join(f'<<"{n}">>' for n in names) + "]"


class Rabbitmqctl:
    """Creates and deletes many vhosts in one ``rabbitmqctl eval``. Every rabbitmqctl call boots
    an Erlang VM (about half a CPU-second), so one call per batch instead of three per test."""

    def __init__(self, run: Callable[..., str], user: str) -> None:
        self._run = run
        self._user = user

    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None:
        if not create and not delete:
            return
        # Each step must return ok: a match failure makes rabbitmqctl exit non-zero, so a vhost
        # that could not be made fails the test that wanted it instead of a later, stranger one.
        expression = (
            f'A = <<"{ACTING_USER}">>, '
            f"[rabbit_vhost:delete(V, A) || V <- {_erlang_binaries(delete)}], "
            "[begin ok = rabbit_vhost:add(V, A), "
            f'ok = rabbit_auth_backend_internal:set_permissions(<<"{self._user}">>, V, '
            '<<".*">>, <<".*">>, <<".*">>, A) end '
            f"|| V <- {_erlang_binaries(create)}], ok."
        )
        output = self._run("eval", expression)
        if output.strip() != "ok":
            raise RuntimeError(f"rabbitmqctl eval answered {output.strip()!r}")


class ManagementApi:
    """Creates and deletes vhosts through the management plugin's HTTP API (cheap per call)."""

    def __init__(self, url: str, user: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port}/api"
        auth = f"{parts.username or 'guest'}:{parts.password or 'guest'}"
        self._authorization = "Basic " + base64.b64encode(auth.encode()).decode()
        self._user = user

    def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        request = urllib.request.Request(f"{self._base}/{path}", method=method)
        request.add_header("content-type", "application/json")
        request.add_header("authorization", self._authorization)
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(request, data=data, timeout=30):
            pass

    def overview(self) -> None:
        """Raises OSError unless the API answers."""
        self._call("GET", "overview")

    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None:
        for vhost in delete:
            self._call("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
        for vhost in create:
            quoted = urllib.parse.quote(vhost, safe="")
            self._call("PUT", f"vhosts/{quoted}", {})
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            self._call("PUT", f"permissions/{quoted}/{urllib.parse.quote(self._user)}", everything)


class VhostAdmin(Protocol):
    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None: ...


class VhostPool:
    """Fresh vhosts for tests, made ahead in batches; a returned vhost is deleted with the next
    batch or when the pool closes. A vhost is never handed out twice."""

    def __init__(self, admin: VhostAdmin, batch: int) -> None:
        self._admin = admin
        self._batch = batch
        self._ready: list[str] = []
        self._used: list[str] = []

    def take(self) -> str:
        if not self._ready:
            fresh = [f"hiker-test-{uuid.uuid4().hex[:12]}" for _ in range(self._batch)]
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


def local_rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout
