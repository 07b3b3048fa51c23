"""The consume policy on fakes: what becomes of a delivery, alone or as a bundle."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry
from redis import exceptions as redis_exceptions

from hiker.core import bundles
from hiker.core.consumer import Headers, QueueConsumer, Route
from hiker.core.contracts import TimerScheduled
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.errors import Reject, RetryLater


@dataclass
class FakeChannel:
    is_closed: bool = False
    acks: list[tuple[int, bool]] = field(default_factory=list)
    rejects: list[tuple[int, bool]] = field(default_factory=list)

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.acks.append((tag, multiple))

    async def basic_reject(self, tag: int, *, requeue: bool = True, wait: bool = True) -> None:
        self.rejects.append((tag, requeue))


@dataclass
class FakeMessage:
    channel: FakeChannel
    delivery_tag: int
    body: bytes
    type: str = "TimerScheduled"
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None


def timer(n: int) -> TimerScheduled:
    return TimerScheduled(
        phone_number_id="1", user=f"u{n}", wamid=f"w{n}", scheduled_at=0, due_at=0
    )


class Handler:
    """Fails each wamid as scripted (an exception per attempt), then succeeds."""

    def __init__(self, script: dict[str, list[BaseException]] | None = None) -> None:
        self.script = script or {}
        self.done: list[str] = []
        self.attempts: dict[str, int] = {}

    async def __call__(self, item: TimerScheduled, _: Headers) -> None:
        self.attempts[item.wamid] = self.attempts.get(item.wamid, 0) + 1
        failures = self.script.get(item.wamid)
        if failures:
            raise failures.pop(0)
        self.done.append(item.wamid)


class Harness:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.channel = FakeChannel()
        self.gate = DependencyGate(DependencyMetrics(CollectorRegistry()))
        self.stopping = asyncio.Event()
        self.set_apart: list[tuple[str, bytes]] = []
        self.consumer = QueueConsumer(
            "q",
            {"TimerScheduled": Route(TimerScheduled, handler)},
            gate=self.gate,
            set_apart=self._set_apart,
            stopping=self.stopping,
            random_unit=lambda: 0.0,  # the shortest backoff: tests do not wait long
        )
        self.tags = 0

    async def _set_apart(self, queue: str, body: bytes, type_name: str, _: Headers) -> None:
        self.set_apart.append((queue, body))

    def message(self, body: bytes, **kwargs: Any) -> AbstractIncomingMessage:
        self.tags += 1
        return cast(AbstractIncomingMessage, FakeMessage(self.channel, self.tags, body, **kwargs))

    async def deliver(self, *messages: AbstractIncomingMessage) -> None:
        await asyncio.gather(*(self.consumer.on_message(m) for m in messages))


def bundle(*items: TimerScheduled) -> bytes:
    return bundles.encode([item.to_bytes() for item in items])


async def test_messages_settled_in_one_turn_are_acked_with_one_multiple_ack() -> None:
    harness = Harness(Handler())
    await harness.deliver(*(harness.message(timer(n).to_bytes()) for n in range(5)))
    assert harness.channel.acks == [(5, True)]
    assert harness.handler.done == [f"w{n}" for n in range(5)]


async def test_a_bundle_is_handled_item_by_item_and_acked_once() -> None:
    harness = Harness(Handler())
    await harness.deliver(harness.message(bundle(*(timer(n) for n in range(3)))))
    assert sorted(harness.handler.done) == ["w0", "w1", "w2"]
    assert harness.channel.acks == [(1, True)]


async def test_an_unreadable_message_alone_is_rejected_to_poison() -> None:
    harness = Harness(Handler())
    await harness.deliver(harness.message(b'{"not": "a timer"}'), harness.message(b"x", type="?"))
    assert harness.channel.rejects == [(1, False), (2, False)]
    assert harness.channel.acks == []


async def test_an_unreadable_item_of_a_bundle_is_set_apart_and_the_rest_go_on() -> None:
    harness = Harness(Handler())
    body = b"[" + timer(1).to_bytes() + b',{"wamid": "bad"},' + timer(2).to_bytes() + b"]"
    await harness.deliver(harness.message(body))
    assert sorted(harness.handler.done) == ["w1", "w2"]
    assert [(q, json.loads(b)) for q, b in harness.set_apart] == [("q", {"wamid": "bad"})]
    assert harness.channel.acks == [(1, True)]


async def test_a_handler_bug_alone_requeues_and_in_a_bundle_is_set_apart() -> None:
    harness = Harness(Handler({"w1": [ValueError("bug")], "w2": [Reject("never")]}))
    await harness.deliver(harness.message(timer(1).to_bytes()))
    assert harness.channel.rejects == [(1, True)]  # redelivered; the delivery limit decides
    await harness.deliver(harness.message(bundle(timer(2), timer(3), timer(4))))
    assert sorted(harness.handler.done) == ["w3", "w4"]
    assert [json.loads(b)["wamid"] for _, b in harness.set_apart] == ["w2"]
    assert harness.channel.acks == [(2, True)]


async def test_a_dependency_away_holds_the_message_and_closes_the_gate_until_it_answers() -> None:
    oom = redis_exceptions.OutOfMemoryError("command not allowed", status_code="OOM")
    handler = Handler({"w1": [oom, oom]})
    harness = Harness(handler)
    task = asyncio.ensure_future(harness.deliver(harness.message(timer(1).to_bytes())))
    await asyncio.sleep(0.05)
    assert not harness.gate.is_open()
    assert harness.gate.failing() == {"redis": "OOM"}
    assert harness.channel.acks == harness.channel.rejects == []  # held, not requeued
    await asyncio.wait_for(task, 5)
    assert harness.gate.is_open()
    assert handler.attempts["w1"] == 3
    assert harness.channel.acks == [(1, True)]
    assert harness.channel.rejects == []


async def test_new_deliveries_wait_while_the_gate_is_closed() -> None:
    oom = redis_exceptions.OutOfMemoryError("command not allowed", status_code="OOM")
    handler = Handler({"w1": [oom] * 3})
    harness = Harness(handler)
    held = asyncio.ensure_future(harness.deliver(harness.message(timer(1).to_bytes())))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(harness.deliver(harness.message(timer(2).to_bytes())))
    await asyncio.sleep(0.05)
    assert "w2" not in handler.attempts  # not even tried while Redis refuses
    await asyncio.wait_for(asyncio.gather(held, waiting), 5)
    assert handler.done == ["w1", "w2"]


async def test_someone_elses_claim_is_retried_without_closing_the_gate() -> None:
    handler = Handler({"w1": [RetryLater("w1")]})
    harness = Harness(handler)
    await asyncio.wait_for(harness.deliver(harness.message(timer(1).to_bytes())), 5)
    assert handler.attempts["w1"] == 2
    assert harness.gate.is_open()
    assert harness.channel.acks == [(1, True)]


async def test_stopping_hands_a_held_message_back() -> None:
    oom = redis_exceptions.OutOfMemoryError("command not allowed", status_code="OOM")
    harness = Harness(Handler({"w1": [oom] * 100}))
    task = asyncio.ensure_future(harness.deliver(harness.message(timer(1).to_bytes())))
    await asyncio.sleep(0.05)
    harness.stopping.set()
    await asyncio.wait_for(task, 5)
    assert harness.channel.rejects == [(1, True)]


async def test_nothing_is_acked_on_a_closed_channel() -> None:
    harness = Harness(Handler())
    harness.channel.is_closed = True
    await harness.deliver(harness.message(timer(1).to_bytes()))
    assert harness.channel.acks == []
