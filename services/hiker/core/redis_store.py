"""Redis adapter: the one place that builds a client, for one server, Sentinel or a Cluster.

Whichever way Redis is reached, the client sends the commands issued in one event-loop turn as
one pipeline (``core.redis_pipelining``); the names of the keys are ``core.keys``'.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from redis import exceptions as redis_exceptions
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from hiker.core.addresses import Node
from hiker.core.observability import redact
from hiker.core.redis_pipelining import (
    MAX_CONNECTIONS,
    AutoPipelinedRedis,
    AutoPipelinedRedisCluster,
)

# Connections per process (``MAX_CONNECTIONS``, per node on a cluster): a consumer with a large
# prefetch runs that many handlers at once; past this bound they wait their turn for a
# connection (back-pressure) instead of failing with "too many connections" halfway through a
# send they could no longer record.

_SOCKETS: Final[dict[str, Any]] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "health_check_interval": 15,
}
# How long a command waits for a free connection before it fails as Redis being away.
_POOL_TIMEOUT_SECONDS: Final = 10.0

RedisClient: TypeAlias = Redis | RedisCluster
"""What ``connect_redis`` returns: both kinds answer the commands Hiker uses."""


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is and how to log in (see ``CommonSettings.redis_target``).

    ``url`` names the server, or any node of a cluster; under Sentinel only its scheme, user,
    password and database number are used, since the sentinels name the primary.
    """

    # Secrets stay out of the repr, so that a target printed or logged shows none.
    url: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    cluster: bool = False
    sentinels: tuple[Node, ...] = ()
    sentinel_master: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def shown(self) -> str:
        """Where this is, fit to print (no password)."""
        if self.sentinels:
            nodes = ",".join(str(node) for node in self.sentinels)
            return f"primary {self.sentinel_master!r} of sentinels {nodes}"
        kind = "Redis Cluster through " if self.cluster else ""
        return kind + redact(self.url)


def connect_redis(target: RedisTarget | str) -> RedisClient:
    """A client for ``target``; it connects lazily, on first command, and reconnects on its own.

    Through Sentinel the primary is asked of the sentinels on every new connection, and a
    connection that meets a demoted primary (READONLY) is dropped, so after a failover the
    next attempt reaches the new one. Commands issued together are pipelined.
    """
    if isinstance(target, str):
        target = RedisTarget(target)
    options: dict[str, Any] = dict(parse_url(target.url))
    if target.password is not None:
        options["password"] = target.password
    if target.cluster:
        return _cluster_client(options)
    if target.sentinels:
        return _sentinel_client(target, options)
    pool = BlockingConnectionPool(
        max_connections=MAX_CONNECTIONS,
        timeout=_POOL_TIMEOUT_SECONDS,
        retry_on_timeout=True,
        **_SOCKETS,
        **options,
    )
    return AutoPipelinedRedis.from_pool(pool)


# How often a Sentinel client asks the sentinels who the primary is, at most.
PRIMARY_RECHECK_SECONDS: Final = 1.0


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool, with the blocking bound, that notices a failover without waiting for
    a connection to fail.

    redis-py asks the sentinels for the primary only when it opens a connection. Connections
    kept busy stay on the old primary after a failover, and a primary demoted by a forced
    failover goes on accepting writes until Sentinel gets round to reconfiguring it: writes
    that are lost once it resyncs as a replica. So the primary's address is checked again
    when a connection is handed out, at most every ``PRIMARY_RECHECK_SECONDS``; on a change,
    idle connections close and busy ones close when released, and reconnect to the new one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._checked_at = 0.0
        self._checking = False

    async def get_connection(self) -> Any:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        if not self._checking and loop.time() - self._checked_at >= PRIMARY_RECHECK_SECONDS:
            self._checking = True
            try:
                await self._recheck_primary()
            finally:
                self._checked_at = loop.time()
                self._checking = False
        return await super().get_connection()  # type: ignore[no-untyped-call]

    async def _recheck_primary(self) -> None:
        known = self.master_address
        try:
            await self.get_master_address()  # type: ignore[no-untyped-call]
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError):
            # No sentinel answers right now: the primary itself may be fine, go on with it.
            return
        if known is not None and self.master_address != known:
            await self.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]


def _sentinel_client(target: RedisTarget, options: dict[str, Any]) -> Redis:
    tls = options.pop("connection_class", None) is SSLConnection
    for place in ("host", "port", "path"):
        options.pop(place, None)
    sentinel_options: dict[str, Any] = {
        key: value for key, value in _SOCKETS.items() if key != "health_check_interval"
    }
    if target.sentinel_password is not None:
        sentinel_options["password"] = target.sentinel_password
    if tls:
        sentinel_options["ssl"] = True
        sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl_")})
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [(node.host, node.port) for node in target.sentinels],
        sentinel_kwargs=sentinel_options,
    )
    assert target.sentinel_master is not None  # settings require it with the sentinels
    client = sentinel.master_for(
        target.sentinel_master,
        redis_class=AutoPipelinedRedis,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=MAX_CONNECTIONS,
        timeout=_POOL_TIMEOUT_SECONDS,
        retry_on_timeout=True,
        ssl=tls,
        **_SOCKETS,
        **options,
    )
    assert isinstance(client, AutoPipelinedRedis)
    client.sentinel_manager = sentinel
    return client


def _cluster_client(options: dict[str, Any]) -> RedisCluster:
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return AutoPipelinedRedisCluster(
        # Commands of one round trip share a node's connection; headroom for what redis-py
        # itself opens meanwhile (redirections, topology refreshes).
        max_connections=2 * MAX_CONNECTIONS,
        # No retries inside the client: a pipeline retried whole after a connection error
        # could run, a second time, commands that had gone through. A failure goes back to
        # the caller, whose consumer holds the message and tries again once Redis answers;
        # the client has meanwhile marked its view of the cluster for a refresh.
        retry=Retry(NoBackoff(), 0),
        **_SOCKETS,
        **options,
    )


async def ping(redis: RedisClient) -> bool:
    return bool(await redis.ping())
