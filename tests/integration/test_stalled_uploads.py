"""Slow, stalled and oversized uploads against the real ingress and broker.

Ingress reads a body before it can check its signature, so anyone may make it hold one. Clients
that send headers and then stall are cut off at the body deadline (408, closed); a declared length
over the limit is refused before a byte of it is read (413); past the concurrency bound, 503 at
once; and a real webhook is answered and published meanwhile. Memory is measured where it means
something: on ingress running as a child process, not on this test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from hiker.core import topology
from hiker.core.signature import SIGNATURE_HEADER, sign
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import (
    APP_SECRET,
    PipelineFactory,
    ServiceProcess,
    free_port,
    metric_value,
    queue_depth,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    at: float  # time.monotonic() when the status line arrived
    closed: bool | None  # the connection ended right after the answer (None: not waited for)


@dataclass
class RawClient:
    """A client on a socket of its own, which sends what it is told and may stall at any point.

    Its answer is read from the moment the request is sent, so ``Answer.at`` is when it came.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    until_closed: bool
    sent_at: float = field(default_factory=time.monotonic)
    reading: asyncio.Future[Answer] | None = None

    @classmethod
    async def post(
        cls, port: int, declared: int, body: bytes = b"", *, until_closed: bool = True
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, until_closed)
        client.reading = asyncio.ensure_future(client._read_answer())
        head = (
            "POST /webhook HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n{SIGNATURE_HEADER}: sha256=00\r\n\r\n"
        )
        writer.write(head.encode() + body)
        # Refused before the body was taken: the answer may still be read.
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return client

    async def answer(self, within: float) -> Answer:
        """The status and headers ingress answered (and whether it then closed)."""
        assert self.reading is not None
        try:
            return await asyncio.wait_for(self.reading, within)
        finally:
            self.writer.close()

    async def _read_answer(self) -> Answer:
        status_line = await self.reader.readline()
        at = time.monotonic()
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        closed = await self.reader.read(1) == b"" if self.until_closed else None
        return Answer(int(status_line.split()[1]), headers, at, closed)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def signed_hello(user: str) -> tuple[bytes, dict[str, str]]:
    body = encode(webhook_body(messages_change([text_message(user, "hello")])))
    return body, {SIGNATURE_HEADER: sign(APP_SECRET.encode(), body)}


async def test_stalled_uploads_are_cut_off_while_a_real_webhook_is_answered(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    timeout = 3.0
    ingress = await make_pipeline(
        services=("ingress",), HIKER_BODY_TIMEOUT_SECONDS=str(timeout)
    )  # the default body limit (1 MiB) and concurrency bound
    port = port_of(ingress.webhook_url)
    stalled = [await RawClient.post(port, declared=50_000, body=b'{"object":') for _ in range(40)]
    too_large = await RawClient.post(port, declared=MiB + 1, until_closed=False)

    refused = await too_large.answer(within=30)
    # Answered without waiting for a byte of the body; the connection is not reused (what is
    # sent of the body is read and dropped for a while, so that the client reads the answer).
    assert (refused.status, refused.headers["connection"]) == (413, "close")
    assert await ingress.post(signed_hello("15550009989")[0]) == 200
    answered_at = time.monotonic()
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 1

    for client in stalled:
        cut = await client.answer(within=timeout + 30)
        assert (cut.status, cut.closed) == (408, True)  # answered, then closed at once
        assert cut.at - client.sent_at >= timeout  # its whole deadline, not less
        # Both were answered while every stalled upload was still held open.
        assert refused.at < cut.at
        assert answered_at < cut.at
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="body_timeout") == 40
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="too_large") == 1
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="accepted") == 1


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field_name} for process {pid}")


def reset_peak(pid: int) -> int:
    """From now on VmHWM is the peak since now (Linux: clear_refs 5); the RSS now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_bytes(pid)


async def test_past_the_concurrency_bound_uploads_are_refused_not_buffered(
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
    amqp_url: str,
) -> None:
    bound, clients, timeout = 8, 40, 10.0
    env = (await make_pipeline(services=())).env
    port = free_port()
    ingress = spawn(
        "ingress",
        {
            **env,
            "HIKER_HTTP_HOST": "127.0.0.1",
            "HIKER_HTTP_PORT": str(port),
            "HIKER_MAX_CONCURRENT_REQUESTS": str(bound),
            "HIKER_BODY_TIMEOUT_SECONDS": str(timeout),
        },
    )
    await ingress.start()
    assert ingress.process is not None
    pid = ingress.process.pid
    url = f"http://127.0.0.1:{port}/webhook"
    async with aiohttp.ClientSession() as session:
        body, headers = signed_hello("15550009988")
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200  # warmed up: connected, first request served
        baseline = reset_peak(pid)

        # Each sends all but the last byte of a body at the limit, then stalls.
        almost = b"x" * (MiB - 1)
        uploads = [
            await RawClient.post(port, declared=MiB, body=almost, until_closed=False)
            for _ in range(clients)
        ]
        answers = await asyncio.gather(*(u.answer(within=timeout + 60) for u in uploads))
        peak = rss_bytes(pid, "VmHWM")
        # Bodies in memory never exceeded the bound's worth (8 MiB), far from the 40 MiB sent.
        assert peak - baseline < 24 * MiB, f"peak grew {(peak - baseline) / MiB:.1f} MiB"

        busy = [a for a in answers if a.status == 503]
        cut = [a for a in answers if a.status == 408]
        assert (len(busy), len(cut)) == (clients - bound, bound)
        assert all(a.headers.get("retry-after") for a in busy)
        # Refused at once: every 503 came before the first held upload reached its deadline.
        assert max(a.at for a in busy) < min(a.at for a in cut)

        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200  # places are free again once the stalled are cut
        async with session.get(f"http://127.0.0.1:{ingress.port}/metrics") as response:
            metrics = await response.text()
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="busy") == clients - bound


async def test_large_hostile_bodies_and_gzip_bombs_leave_ingress_memory_bounded(
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
    amqp_url: str,
) -> None:
    env = (await make_pipeline(services=())).env
    port = free_port()
    ingress = spawn(
        "ingress", {**env, "HIKER_HTTP_HOST": "127.0.0.1", "HIKER_HTTP_PORT": str(port)}
    )
    await ingress.start()
    assert ingress.process is not None
    url = f"http://127.0.0.1:{port}/webhook"
    large = b"[" + b"1," * (MiB // 2 - 2) + b"]"  # just under the 1 MiB limit
    malformed = large[:-1]
    bomb = gzip.compress(b"\x00" * (64 * MiB))  # 64 MiB of zeros in ~64 KiB
    wrong = {SIGNATURE_HEADER: "sha256=00"}
    signed = {SIGNATURE_HEADER: sign(APP_SECRET.encode(), malformed)}
    async with aiohttp.ClientSession() as session:

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=io.BytesIO(body), headers=headers) as response:
                await response.read()
                return response.status

        for _ in range(3):  # warm up the allocator's pools before measuring
            assert await post(large, wrong) == 403
            assert await post(malformed, signed) == 400
        baseline = reset_peak(ingress.process.pid)
        for _ in range(40):
            assert await post(large, wrong) == 403
            assert await post(malformed, signed) == 400  # signed, so parsed: still not JSON
            # Never inflated: the compressed bytes are what is checked, and refused.
            assert await post(bomb, {**wrong, "Content-Encoding": "gzip"}) == 403
        peak = rss_bytes(ingress.process.pid, "VmHWM")
    assert peak - baseline < 24 * MiB, f"peak grew {(peak - baseline) / MiB:.1f} MiB"
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 0
