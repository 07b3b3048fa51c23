"""``make run``'s placeholder secrets against a real ingress process: accepted on loopback, where
``hiker simulate`` signs with the same placeholder, and refused once the webhook listens on every
interface."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
import pytest

from hiker.core.secret_policy import DEV_PLACEHOLDERS
from tests.support import free_port

pytestmark = pytest.mark.integration


def dev_env(amqp_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What ``hiker dev`` gives ingress when nothing is set: the placeholders, default hosts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    return {
        **env,
        **DEV_PLACEHOLDERS,
        "HIKER_AMQP_URL": amqp_url,
        "HIKER_REDIS_URL": redis_url,
        **extra,
    }


async def hiker(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_simulate_reaches_an_ingress_run_on_the_placeholders(
    amqp_url: str, redis_url: str
) -> None:
    http_port, metrics_port = free_port(), free_port()
    env = dev_env(
        amqp_url,
        redis_url,
        HIKER_HTTP_PORT=str(http_port),
        HIKER_METRICS_PORT=str(metrics_port),
    )
    ingress = await hiker("ingress", env=env)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert ingress.returncode is None, await ingress.communicate()
                try:
                    url = f"http://127.0.0.1:{metrics_port}/readyz"
                    async with session.get(url) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "ingress did not become ready"
                await asyncio.sleep(0.1)
        # As the README says to, with no secret given: simulate signs with the placeholder.
        simulate_env = {k: v for k, v in env.items() if k != "HIKER_APP_SECRET"}
        url = f"http://127.0.0.1:{http_port}/webhook"
        simulate = await hiker("simulate", "--url", url, env=simulate_env)
        stdout, stderr = await asyncio.wait_for(simulate.communicate(), 60)
        assert simulate.returncode == 0, stdout.decode() + stderr.decode()
        assert stdout.decode().startswith("200")
    finally:
        if ingress.returncode is None:
            ingress.terminate()
        await asyncio.wait_for(ingress.communicate(), 30)


async def test_the_placeholders_are_refused_once_the_webhook_leaves_loopback(
    amqp_url: str, redis_url: str
) -> None:
    env = dev_env(amqp_url, redis_url, HIKER_HTTP_HOST="0.0.0.0", HIKER_HTTP_PORT=str(free_port()))
    ingress = await hiker("ingress", env=env)
    _, stderr = await asyncio.wait_for(ingress.communicate(), 60)
    assert ingress.returncode == 2
    error = stderr.decode()
    assert error.startswith("hiker ingress: configuration error: HIKER_APP_SECRET is make run's")
    assert "HIKER_HTTP_HOST is not" in error
    assert not any(value in error for value in DEV_PLACEHOLDERS.values())
