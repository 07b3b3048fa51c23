"""One vhost and one Redis key prefix per measurement, on the shared RabbitMQ and Redis, and
always deleted afterwards (on failure and Ctrl-C too, through the exit hook)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field

from benchmarks import processes
from benchmarks.processes import log

AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1:5672")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl -q args``; waits out a broker whose app is briefly stopped (the broker
    is shared, and other engineers' tests restart it)."""
    for attempt in range(8):
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout
        if "app to be running" not in done.stderr:
            break
        time.sleep(1 + attempt)
    message = (done.stderr or done.stdout).strip().splitlines()
    raise RuntimeError(
        f"rabbitmqctl {' '.join(args)}: {message[0] if message else done.returncode}"
    )


@dataclass
class Isolation:
    """One vhost and one Redis prefix, deleted on exit."""

    name: str = field(default_factory=lambda: f"hiker-bench-{secrets.token_hex(4)}")

    @property
    def vhost(self) -> str:
        return self.name

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{AMQP_HOST}/{self.vhost}"

    @property
    def redis_prefix(self) -> str:
        return f"{self.name}:"

    def __enter__(self) -> Isolation:
        processes.on_exit(self.cleanup)
        log(f"vhost {self.vhost} (and Redis prefix {self.redis_prefix})")
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        return self

    def __exit__(self, *_: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        processes.done(self.cleanup)
        self._delete_vhost()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.redis_prefix}*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
            client.close()

    def _delete_vhost(self) -> None:
        try:
            rabbitmqctl("delete_vhost", self.vhost, timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            if "does not exist" not in str(exc):  # else it was never made, or is gone already
                log(f"could not delete vhost {self.vhost} ({exc}): delete it by hand")

    def purge(self, *queues: str) -> None:
        for name in queues:
            with contextlib.suppress(RuntimeError):
                rabbitmqctl("purge_queue", "-p", self.vhost, name)

    def depths(self, *names: str) -> dict[str, int | None]:
        """Ready messages per queue, read live over AMQP (passive declare).

        ``rabbitmqctl`` boots an Erlang VM per call (half a CPU-second): sampling with it every
        second would take a quarter of a 2-core machine away from what is being measured.
        """

        async def read() -> dict[str, int | None]:
            import aio_pika

            connection = await aio_pika.connect(self.amqp_url)
            try:
                result: dict[str, int | None] = {}
                for name in names:
                    channel = await connection.channel()
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                        result[name] = queue.declaration_result.message_count
                    except aio_pika.exceptions.ChannelClosed:
                        result[name] = None
                return result
            finally:
                await connection.close()

        import asyncio

        return asyncio.run(read())

    def queues(self) -> dict[str, dict[str, int]]:
        """name → {messages, memory} from ``rabbitmqctl list_queues``."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages", "memory", "--formatter", "json"
        )
        return {
            q["name"]: {"messages": int(q["messages"] or 0), "memory": int(q["memory"] or 0)}
            for q in json.loads(out or "[]")
        }


def node_memory_total() -> int | None:
    """The broker node's total memory (bytes), from ``rabbitmq-diagnostics memory_breakdown``."""
    try:
        done = subprocess.run(
            [
                *("rabbitmq-diagnostics", "-q", "memory_breakdown"),
                *("--unit", "bytes", "--formatter", "json"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        data = json.loads(done.stdout)
        # {"category": {"bytes": N, "percentage": P}, ...}: the total is their sum.
        return sum(int(v["bytes"]) for v in data.values() if isinstance(v, dict) and "bytes" in v)
    except Exception:
        return None
