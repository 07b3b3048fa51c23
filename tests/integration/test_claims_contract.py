"""The in-memory claims of the unit tests and of ``BotHarness`` (``hiker.testing.fakes``) against
the real ClaimStore: the same scenarios, the same answers, so that tests on the fake say what
production does. ``test_conversations_contract.py`` does the same for the conversation store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from hiker.core.claim_marks import DONE
from hiker.core.claims import Claim, ClaimLost, ClaimState, ClaimStep, ClaimStore
from tests.fakes import Clock, FakeStep, InMemoryClaims

pytestmark = pytest.mark.integration

LEASE = 0.2


@dataclass
class Subject:
    claim: Callable[..., Awaitable[Claim]]
    advance: Callable[[float], Awaitable[None]]
    # A step that counts its runs and returns 7: Lua for Redis, Python for the fake.
    step: ClaimStep
    runs: Callable[[], Awaitable[int]]


@pytest.fixture(params=["redis", "fake"])
async def subject(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Subject, str]]:
    if request.param == "redis":
        client = Redis.from_url(redis_url)
        store = ClaimStore(client, lease_seconds=LEASE, done_ttl_seconds=60)
        counter = redis_prefix + "runs"
        step = ClaimStep("redis.call('INCR', KEYS[1])\nreturn 7", (counter,))

        async def runs() -> int:
            return int(await client.get(counter) or 0)

        yield Subject(store.claim, asyncio.sleep, step, runs), redis_prefix
        await client.aclose()
        return
    clock = Clock()
    fake = InMemoryClaims(clock, lease_seconds=LEASE, done_ttl_seconds=60)
    count = 0

    def run() -> int:
        nonlocal count
        count += 1
        return 7

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    async def fake_runs() -> int:
        return count

    yield Subject(fake.claim, advance, FakeStep("", run=run), fake_runs), "fake:"


async def test_claim_busy_done(subject: tuple[Subject, str]) -> None:
    s, prefix = subject
    first = await s.claim(prefix + "a", step=s.step)
    assert (first.state, first.step_result) == (ClaimState.CLAIMED, 7)
    assert (await s.claim(prefix + "a", step=s.step)).state is ClaimState.BUSY
    await first.confirm(DONE)
    assert (await s.claim(prefix + "a", step=s.step)).state is ClaimState.DONE
    assert await s.runs() == 1  # the step ran only when the claim was taken


async def test_release_and_expiry_free_the_key(subject: tuple[Subject, str]) -> None:
    s, prefix = subject
    released = await s.claim(prefix + "b")
    await released.release()
    crashed = await s.claim(prefix + "b")
    assert crashed.state is ClaimState.CLAIMED
    await s.advance(LEASE * 1.5)
    retry = await s.claim(prefix + "b")
    assert retry.state is ClaimState.CLAIMED
    with pytest.raises(ClaimLost):
        await crashed.begin_call(5)


async def test_a_call_is_busy_until_its_deadline_then_in_doubt_once(
    subject: tuple[Subject, str],
) -> None:
    s, prefix = subject
    caller = await s.claim(prefix + "c", call_within=LEASE)
    assert caller.in_call
    assert (await s.claim(prefix + "c")).state is ClaimState.BUSY
    await s.advance(LEASE * 1.5)
    settler = await s.claim(prefix + "c")
    assert settler.state is ClaimState.IN_DOUBT
    assert (await s.claim(prefix + "c")).state is ClaimState.BUSY  # the settler holds it
    await s.advance(LEASE * 1.5)
    assert (await s.claim(prefix + "c")).state is ClaimState.IN_DOUBT  # it died: never free
