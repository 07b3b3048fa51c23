"""``hiker dev`` as a child of a test: its own ports, vhost and Redis prefix, its output kept."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import aiohttp

from hiker.tools.dev import ORDER
from tests.support import free_port

# Long enough for the pipeline under a loaded machine; each wait ends as soon as it is met.
DEADLINE_SECONDS = 60.0


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports (the metrics ports ``hiker dev`` hands out)."""
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no block of free ports")


def dev_env(
    home: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> tuple[int, dict[str, str]]:
    """The first metrics port and the environment of a ``hiker dev`` (and of ``hiker simulate``
    talking to it) on free ports, the checkout's virtualenv first on ``PATH``."""
    metrics_base = free_port_block(len(ORDER))
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("HIKER_", "PYTEST_", "PYTHON"))
    }
    return metrics_base, {
        **inherited,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{inherited.get('PATH', '')}",
        "HIKER_AMQP_URL": amqp_url,
        "HIKER_REDIS_URL": redis_url,
        "HIKER_REDIS_PREFIX": redis_prefix,
        "HIKER_HTTP_PORT": str(free_port()),
        "HIKER_API_PORT": str(free_port()),
        "HIKER_GRAPH_MOCK_PORT": str(free_port()),
        "HIKER_AIMOCK_PORT": str(free_port()),
        "HIKER_METRICS_PORT": str(metrics_base),
    }


class Terminal:
    """The command left running, its output kept line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        assert process.stdout is not None
        self.reading = asyncio.create_task(self._read(process.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def shown(self) -> str:
        return "\n".join(self.lines[-80:])

    async def wait_for_lines(self, expected: list[str], since: int) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not all(line in self.lines[since:] for line in expected):
            assert self.process.returncode is None, self.shown()
            assert time.monotonic() < deadline, f"never printed {expected}:\n{self.shown()}"
            await asyncio.sleep(0.1)


async def ready(url: str, session: aiohttp.ClientSession) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def wait_until_ready(
    terminal: Terminal, metrics_base: int, services: tuple[str, ...] = ORDER
) -> None:
    """Each of ``services`` answers /readyz (the broker and Redis reached, consuming)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for service in services:
            url = f"http://127.0.0.1:{metrics_base + ORDER.index(service)}/readyz"
            while not await ready(url, session):
                assert terminal.process.returncode is None, terminal.shown()
                assert time.monotonic() < deadline, f"{url} never ready:\n{terminal.shown()}"
                await asyncio.sleep(0.2)
