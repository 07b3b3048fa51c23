"""Redis: reachable, logged in and writable under the key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from hiker.core.observability import redact
from hiker.tools.doctor.report import Finding, Status


async def check_redis(url: str, prefix: str, timeout_seconds: float) -> Finding:
    """Set a prefixed key with a short expiry and delete it: reachable, logged in, writable."""
    shown = redact(url)
    try:
        client = Redis.from_url(
            url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
        )
    except ValueError as exc:
        return Finding("redis", Status.FAIL, f"unusable URL: {exc}", "fix HIKER_REDIS_URL")
    key = f"{prefix}doctor:{secrets.token_hex(8)}"
    try:
        await asyncio.wait_for(_write_and_delete(client, key), timeout_seconds * 2)
    except redis_exceptions.AuthenticationError:
        return Finding(
            "redis",
            Status.FAIL,
            f"login refused at {shown}",
            "fix the user or password in HIKER_REDIS_URL",
        )
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
        return Finding(
            "redis",
            Status.FAIL,
            f"not reachable at {shown} ({type(exc).__name__})",
            "start Redis, or fix host and port in HIKER_REDIS_URL",
        )
    except TimeoutError:
        return Finding(
            "redis", Status.FAIL, f"no answer within {timeout_seconds:g}s at {shown}", "check Redis"
        )
    except redis_exceptions.ResponseError as exc:
        # READONLY (a replica), OOM (maxmemory reached), NOPERM (an ACL): Redis names it.
        return Finding(
            "redis",
            Status.FAIL,
            f"not writable at {shown}: {exc}",
            "point HIKER_REDIS_URL at a writable primary whose user may write "
            f"{prefix}* keys, with memory to spare",
        )
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return Finding("redis", Status.OK, f"{shown} writable under prefix {prefix!r}")


async def _write_and_delete(client: Redis, key: str) -> None:
    await client.set(key, b"1", ex=30)
    await client.delete(key)
