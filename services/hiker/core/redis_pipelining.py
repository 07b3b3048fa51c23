"""Auto-pipelining: the commands issued in one event-loop turn leave as one pipeline.

This leans on redis-py's internals: the clients below override ``execute_command`` (which every
command method calls) and send a batch through a non-transactional pipeline whose
``execute(raise_on_error=False)`` leaves each command's error to its own caller. Measured with
64 commands in flight: 23 µs of client CPU per command, against 60 to 66 µs unbatched
(2026-11-29). ``tests/unit/test_library_internals.py`` fails loudly when a new redis-py moves
what is used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any, Final

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import Sentinel

from hiker.core.waiters import settle

# Connections per process (per node, on a cluster): see ``core.redis_store``.
MAX_CONNECTIONS: Final = 64


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
