"""Redis: reachable (directly, through Sentinel or as a Cluster), logged in and writable."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from redis import exceptions as redis_exceptions
from redis.asyncio.sentinel import MasterNotFoundError, SentinelConnectionPool

from hiker.core.keys import Keys
from hiker.core.redis_pipelining import AutoPipelinedRedisCluster
from hiker.core.redis_store import RedisClient, RedisTarget, connect_redis
from hiker.tools.doctor.report import Finding, Status


async def check_redis(target: RedisTarget | str, prefix: str, timeout_seconds: float) -> Finding:
    """Set a key with a short expiry and delete it: reachable, logged in, writable.

    The key is named as a conversation's keys are (with a hash tag), so on a cluster it lands
    where they do; through Sentinel it reaches the primary the sentinels name.
    """
    if isinstance(target, str):
        target = RedisTarget(target)
    shown = target.shown()
    where = _variables(target)
    try:
        client = connect_redis(target)
    except ValueError as exc:
        return Finding("redis", Status.FAIL, f"unusable URL: {exc}", "fix HIKER_REDIS_URL")
    key = Keys(prefix).followup("doctor", secrets.token_hex(4), secrets.token_hex(8))
    try:
        await asyncio.wait_for(_write_and_delete(client, key), timeout_seconds * 2)
        found = await asyncio.wait_for(_layout(client, target), timeout_seconds)
    except MasterNotFoundError:
        return Finding(
            "redis",
            Status.FAIL,
            f"no sentinel named a primary: {shown}",
            "check HIKER_REDIS_SENTINELS (host:port of each sentinel), "
            "HIKER_REDIS_SENTINEL_MASTER (the name they monitor) and "
            "HIKER_REDIS_SENTINEL_PASSWORD",
        )
    except redis_exceptions.AuthenticationError:
        return Finding(
            "redis",
            Status.FAIL,
            f"login refused at {shown}",
            "fix the user or password in HIKER_REDIS_URL (or HIKER_REDIS_PASSWORD)",
        )
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
        return Finding(
            "redis",
            Status.FAIL,
            f"not reachable at {shown} ({type(exc).__name__})",
            f"start Redis, or fix host and port in {where}",
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
            f"point {where} at a writable primary whose user may write "
            f"{prefix}* keys, with memory to spare",
        )
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return Finding("redis", Status.OK, f"{shown} writable under prefix {prefix!r}{found}")


def _variables(target: RedisTarget) -> str:
    if target.sentinels:
        return "HIKER_REDIS_SENTINELS"
    return "HIKER_REDIS_URL"


async def _write_and_delete(client: RedisClient, key: str) -> None:
    await client.set(key, b"1", ex=30)
    await client.delete(key)


async def _layout(client: RedisClient, target: RedisTarget) -> str:
    """What the client found behind the target: the primary Sentinel named, the cluster's."""
    if isinstance(client, AutoPipelinedRedisCluster):
        primaries = client.get_primaries()
        return f"; {len(primaries)} primaries serve every slot"
    pool = getattr(client, "connection_pool", None)
    if target.sentinels and isinstance(pool, SentinelConnectionPool):
        host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        return f"; the primary now is {host}:{port}"
    return ""
