"""Redis adapter: the client, and the one place that turns names into prefixed keys."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

# Connections per process. A consumer with a large prefetch runs that many handlers at once;
# past this bound they wait their turn for a connection (back-pressure) instead of failing
# with "too many connections" halfway through a send they could no longer record.
MAX_CONNECTIONS = 64


def connect_redis(url: str) -> Redis:
    """A client for ``url``; it connects lazily, on first command, and reconnects on its own."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=10.0,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=15,
        retry_on_timeout=True,
    )
    return Redis.from_pool(pool)


class Keys:
    """Every Redis key Hiker writes starts with ``prefix``, so test runs and tenants stay apart."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def claim(self, wamid: str) -> str:
        return f"{self.prefix}claim:{wamid}"

    def conversation(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}conv:{phone_number_id}:{user}"

    def followup(self, phone_number_id: str, user: str, wamid: str) -> str:
        return f"{self.prefix}followup:{phone_number_id}:{user}:{wamid}"

    def sent(self, idempotency_key: str) -> str:
        return f"{self.prefix}sent:{idempotency_key}"

    def pace(self, phone_number_id: str) -> str:
        return f"{self.prefix}pace:{phone_number_id}"


async def ping(redis: Redis) -> bool:
    return bool(await redis.ping())
