"""Redis adapter: the client, and the one place that turns names into prefixed keys."""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import BlockingConnectionPool, Redis

from hiker.core.waiters import settle

# Connections per process. A consumer with a large prefetch runs that many handlers at once;
# past this bound they wait their turn for a connection (back-pressure) instead of failing
# with "too many connections" halfway through a send they could no longer record.
MAX_CONNECTIONS = 64


_Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class AutoPipelinedRedis(Redis):
    """A client that sends the commands issued in one event-loop turn as one pipeline.

    With a consumer handling dozens of messages at once, their claims and confirms would each
    cost a round trip of their own, and most of that cost is the client's, per round trip, not
    Redis's. The first command of a turn waits for the end of that turn, gathering the commands
    issued meanwhile, and sends them all in one write; each caller gets its own result or error.
    A command alone costs one loop turn more. The batch is not a transaction: commands stay as
    independent as when sent one by one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forming: list[_Pending] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # Round trips that carried two or more commands (observable in tests and benchmarks).
        self.pipelined_batches = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
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
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
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
        pipe = self.pipeline(transaction=False)
        for args, options, _ in batch:
            pipe.execute_command(*args, **options)
        try:
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


def connect_redis(url: str) -> Redis:
    """A client for ``url``; it connects lazily, on first command, and reconnects on its own.

    Commands issued together are pipelined (``AutoPipelinedRedis``).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=10.0,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=15,
        retry_on_timeout=True,
    )
    return AutoPipelinedRedis.from_pool(pool)


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

    def reminder(self, phone_number_id: str, user: str, wamid: str, reminder: str) -> str:
        return f"{self.prefix}remind:{phone_number_id}:{user}:{wamid}:{reminder}"

    def history(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}hist:{phone_number_id}:{user}"

    def sent(self, idempotency_key: str) -> str:
        return f"{self.prefix}sent:{idempotency_key}"

    def pace(self, phone_number_id: str) -> str:
        return f"{self.prefix}pace:{phone_number_id}"

    def pace_user(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}pace:{phone_number_id}:{user}"


async def ping(redis: Redis) -> bool:
    return bool(await redis.ping())
