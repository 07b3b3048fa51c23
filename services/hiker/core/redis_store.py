"""Redis adapter: the client (one server, Sentinel or Cluster), and the names of every key.

``connect_redis`` is the one place that builds a client. Whichever way Redis is reached, the
client sends the commands issued in one event-loop turn as one pipeline (``AutoPipelinedRedis``,
``AutoPipelinedRedisCluster``), and every key that one script touches shares a hash tag
(``Keys``), so that a Redis Cluster can run it on one node.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
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
from hiker.core.waiters import settle

# Connections per process (per node, on a cluster). A consumer with a large prefetch runs that
# many handlers at once; past this bound they wait their turn for a connection (back-pressure)
# instead of failing with "too many connections" halfway through a send they could no longer
# record.
MAX_CONNECTIONS = 64

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


_Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class _AutoPipelining:
    """Sends the commands issued in one event-loop turn as one pipeline.

    With a consumer handling dozens of messages at once, their claims and confirms would each
    cost a round trip of their own, and most of that cost is the client's, per round trip, not
    Redis's. The first command of a turn waits for the end of that turn, gathering the commands
    issued meanwhile, and sends them all in one write; each caller gets its own result or error.
    A command alone costs one loop turn more. The batch is not a transaction: commands stay as
    independent as when sent one by one.
    """

    def _init_batching(self) -> None:
        self._forming: list[_Pending] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # Round trips that carried two or more commands (observable in tests and benchmarks).
        self.pipelined_batches = 0

    async def _direct(self, *args: Any, **options: Any) -> Any:
        """The command sent on its own, as the underlying client sends it."""
        raise NotImplementedError

    def _new_pipeline(self) -> Any:
        raise NotImplementedError

    def _batchable(self, args: tuple[Any, ...]) -> bool:
        return True

    def _round_trip(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while a command or a batch is under way (a bound on connections)."""
        return contextlib.nullcontext()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self._batchable(args):
            async with self._round_trip():
                return await self._direct(*args, **options)
        loop = asyncio.get_running_loop()
        if self._forming is not None:  # a batch is gathering this turn: join it
            future: asyncio.Future[Any] = loop.create_future()
            self._forming.append((args, options, future))
            return await future
        self._forming = []
        try:
            await asyncio.sleep(0)  # let the rest of this turn add their commands
        except asyncio.CancelledError:
            self._send_in_background(self._take_forming())
            raise
        others = self._take_forming()
        if not others:
            async with self._round_trip():
                return await self._direct(*args, **options)
        own: asyncio.Future[Any] = loop.create_future()
        # In a task of its own: cancelling this caller must not cancel the others' commands.
        self._send_in_background([(args, options, own), *others])
        return await own

    def _take_forming(self) -> list[_Pending]:
        batch, self._forming = self._forming or [], None
        return batch

    def _send_in_background(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            async with self._round_trip():
                pipe = self._new_pipeline()
                for args, options, _ in batch:
                    pipe.execute_command(*args, **options)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # every caller gets it, whatever it is
            if isinstance(exc, asyncio.CancelledError):
                # Shutting down: to the callers this is Redis going away, not their own cancel.
                exc = redis_exceptions.ConnectionError("Redis batch cancelled")
            for _, _, future in batch:
                settle(future, error=exc)
            return
        self.pipelined_batches += 1
        for (_, _, future), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                settle(future, error=result)
            else:
                settle(future, result)


# The ignores: mypy checks the client's own command mixins against each other once a class
# adds a base of its own, and two of redis-py's disagree on a method Hiker never calls.
class AutoPipelinedRedis(_AutoPipelining, Redis):  # type: ignore[misc]
    """A client of one Redis server (or of the primary Sentinel names), auto-pipelined."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_batching()
        # Kept open as long as the client: its connections ask the sentinels for the primary.
        self.sentinel_manager: Sentinel | None = None

    async def _direct(self, *args: Any, **options: Any) -> Any:
        return await Redis.execute_command(self, *args, **options)  # type: ignore[no-untyped-call]

    def _new_pipeline(self) -> Any:
        return self.pipeline(transaction=False)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


# Commands whose one key is their first argument: a batch of these maps onto one node each.
_SINGLE_KEY_COMMANDS: Final = frozenset(
    {
        "GET", "SET", "SETEX", "PSETEX", "GETDEL", "GETEX", "INCR", "INCRBY", "DECR", "DECRBY",
        "HGET", "HMGET", "HGETALL", "HSET", "HDEL", "HINCRBY", "EXPIRE", "PEXPIRE", "PERSIST",
        "TTL", "PTTL", "TYPE", "SADD", "SREM", "SISMEMBER", "ZADD", "ZREM", "ZSCORE",
    }
)  # fmt: skip
_ONE_KEY_OR_MORE: Final = frozenset({"DEL", "EXISTS", "UNLINK"})


_IN_ROUND_TRIP: Final = contextvars.ContextVar("hiker_redis_in_round_trip", default=False)


class ClusterTopologyUnavailable(redis_exceptions.ConnectionError):
    """The client could not read the cluster's layout from any node: Redis is away."""


class AutoPipelinedRedisCluster(_AutoPipelining, RedisCluster):  # type: ignore[misc]
    """A Redis Cluster client, auto-pipelined: each batch is split by node (``ClusterPipeline``)
    and sent to the nodes at once, each caller still getting its own result or error.

    Only commands that map onto one slot are batched, so a batch never fails as a whole for
    one command's keys; the rest (SCRIPT LOAD to every primary, PING...) go on their own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_batching()
        # A round trip holds at most one connection per node: this bounds each node's pool.
        self._permits = asyncio.Semaphore(MAX_CONNECTIONS)

    async def initialize(self, *args: Any, **kwargs: Any) -> AutoPipelinedRedisCluster:
        try:
            await super().initialize(*args, **kwargs)
        except redis_exceptions.RedisClusterException as exc:
            # No node answered with a usable layout (all away, or mid-failover): the caller's
            # consumer must hold its message, not poison it as a bad command.
            raise ClusterTopologyUnavailable(str(exc)) from exc
        return self

    async def _direct(self, *args: Any, **options: Any) -> Any:
        return await RedisCluster.execute_command(self, *args, **options)

    def _new_pipeline(self) -> Any:
        return self.pipeline()

    @contextlib.asynccontextmanager
    async def _round_trip(self) -> AsyncIterator[None]:
        if _IN_ROUND_TRIP.get():
            # A redirection the pipeline sends on its own, inside a round trip that holds a
            # permit already: waiting for a second one could wait for ever.
            yield
            return
        async with self._permits:
            token = _IN_ROUND_TRIP.set(True)
            try:
                yield
            finally:
                _IN_ROUND_TRIP.reset(token)

    def _batchable(self, args: tuple[Any, ...]) -> bool:
        if not args or not isinstance(args[0], str):
            return False
        name = args[0].upper()
        if name in _SINGLE_KEY_COMMANDS:
            return len(args) >= 2
        if name in _ONE_KEY_OR_MORE:
            return len(args) == 2
        if name in ("EVALSHA", "EVAL") and len(args) >= 3:
            count = int(args[2])
            keys = args[3 : 3 + count]
            return count > 0 and len({self.keyslot(key) for key in keys}) == 1
        return False


class Keys:
    """Every Redis key Hiker writes, each starting with ``prefix`` (tests and tenants apart).

    A key's hash tag (the part in braces) decides its Redis Cluster slot; keys that one script
    touches share it:
    - a conversation's: ``{<phone number id>:<user>}`` for its state, history, its messages'
      claims, follow-ups and reminders (a message's claim records the message in the state
      and the history, in one script);
    - a phone number's: ``{<phone number id>}`` for its sends' claims and its pacing, the
      number's and per user (a send's claim reserves both slots, in one script).

    Before hash tags the same keys had other names (``legacy``): with ``adopt_legacy`` a key
    still under its old name is moved to the new one the first time a claim touches it, and
    reads look for it there, so that an install upgraded in place keeps its claims, state and
    pacing (docs/architecture.md, "Redis keys").
    """

    def __init__(self, prefix: str, *, adopt_legacy: bool = False) -> None:
        self.prefix = prefix
        self.adopt_legacy = adopt_legacy

    def claim(self, phone_number_id: str, user: str, wamid: str) -> str:
        return f"{self.prefix}claim:{{{phone_number_id}:{user}}}:{wamid}"

    def conversation(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}conv:{{{phone_number_id}:{user}}}"

    def followup(self, phone_number_id: str, user: str, wamid: str) -> str:
        return f"{self.prefix}followup:{{{phone_number_id}:{user}}}:{wamid}"

    def reminder(self, phone_number_id: str, user: str, wamid: str, reminder: str) -> str:
        return f"{self.prefix}remind:{{{phone_number_id}:{user}}}:{wamid}:{reminder}"

    def history(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}hist:{{{phone_number_id}:{user}}}"

    def sent(self, phone_number_id: str, idempotency_key: str) -> str:
        return f"{self.prefix}sent:{{{phone_number_id}}}:{idempotency_key}"

    def pace(self, phone_number_id: str) -> str:
        return f"{self.prefix}pace:{{{phone_number_id}}}"

    def pace_user(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}pace:{{{phone_number_id}}}:{user}"

    def legacy(self, key: str) -> str | None:
        """The name ``key`` had before hash tags, while adopting such keys (else None)."""
        if not self.adopt_legacy or not key.startswith(self.prefix):
            return None
        kind, _, tagged = key[len(self.prefix) :].partition(":")
        if not tagged.startswith("{") or "}" not in tagged:
            return None
        tag, _, rest = tagged[1:].partition("}")
        rest = rest.removeprefix(":")
        if kind not in _HAD_LEGACY_NAME or (kind == "pace" and rest):
            return None  # a kind of key that came with hash tags (per-user pacing included)
        if kind in _TAG_NOT_IN_LEGACY_NAME:
            return f"{self.prefix}{kind}:{rest}"
        return f"{self.prefix}{kind}:{tag}" + (f":{rest}" if rest else "")


# The kinds of key that existed before hash tags; history, reminders and per-user pacing came
# with them and have no other name.
_HAD_LEGACY_NAME: Final = frozenset({"claim", "conv", "followup", "sent", "pace"})
# Claims used to be named by the message or the idempotency key alone.
_TAG_NOT_IN_LEGACY_NAME: Final = frozenset({"claim", "sent"})

LegacyName = Callable[[str], "str | None"]


async def ping(redis: RedisClient) -> bool:
    return bool(await redis.ping())
