"""Listing and replaying ``hiker.poison`` and ``hiker.inspect``, on the shared held-queue reader."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from hiker.core import topology
from hiker.tools.heldqueue import Listing, ToolError, reading, replaying
from hiker.tools.poison.model import INSPECT_EXCHANGES, HeldMessage, replay_copy

DEFAULT_LIST_LIMIT: Final = 50
HELD_QUEUES: Final = (topology.POISON_QUEUE, topology.INSPECT_QUEUE)


def queues_to_read(queues: Collection[str]) -> list[str]:
    """``hiker.poison`` unless only ``hiker.inspect`` is asked for; ``hiker.inspect`` only when
    asked for: its updates are not failures, and re-routing them is a decision of its own."""
    wanted = []
    if not queues or set(queues) - {topology.INSPECT_QUEUE}:
        wanted.append(topology.POISON_QUEUE)
    if topology.INSPECT_QUEUE in queues:
        wanted.append(topology.INSPECT_QUEUE)
    return wanted


@dataclass
class PoisonReplay:
    """What a replay of held messages did."""

    replayed: int = 0
    left: int = 0  # not selected, no known route, or replayed before
    no_route: int = 0  # its origin is unknown (no x-death, or an unknown exchange)
    replayed_before: int = 0  # inspected copies this tool published, skipped
    by_route: dict[str, int] = field(default_factory=dict)


async def list_held(
    amqp_url: str,
    *,
    queues: Collection[str] = (),
    ids: Collection[str] = (),
    limit: int = DEFAULT_LIST_LIMIT,
) -> Listing[HeldMessage]:
    """Up to ``limit`` held messages matching the filters, oldest first; every queue unchanged.

    ``queues`` select where messages are held (``hiker.inspect``, ``hiker.poison``) or, for
    poison, the queue they died in; ``ids`` an item id, the message id or the body's digest.
    """
    shown: list[HeldMessage] = []
    async with reading(amqp_url, queues_to_read(queues)) as held:
        for name, queue in held.items():
            async for message in queue.messages():
                if len(shown) >= limit:
                    break
                seen = HeldMessage.from_message(name, message)
                if seen.matches(queues, ids):
                    shown.append(seen)
        return Listing(shown, {name: queue.total for name, queue in held.items()})


async def replay_held(
    amqp_url: str,
    *,
    queues: Collection[str] = (),
    ids: Collection[str] = (),
    limit: int | None = None,
) -> PoisonReplay:
    """Put matching held messages back on their original route, at most ``limit`` of them.

    Each is removed only after the broker confirmed its copy (see the package docstring). The
    first copy the broker refuses stops the run with ``ToolError``; it and everything not yet
    replayed stay where they were.
    """
    report = PoisonReplay()
    wanted = queues_to_read(queues)
    # Dead-lettered messages go back by queue name; inspected ones to the exchange they came by.
    exchanges = INSPECT_EXCHANGES if topology.INSPECT_QUEUE in wanted else frozenset()
    try:
        async with (
            reading(amqp_url, wanted) as held,
            replaying(amqp_url, exchanges) as replayer,
        ):
            for name, queue in held.items():
                try:
                    async for message in queue.messages():
                        seen = HeldMessage.from_message(name, message)
                        if not seen.matches(queues, ids):
                            continue
                        route = seen.route()
                        if route is None:
                            report.no_route += 1
                            continue
                        # A copy of an inspected message comes back to hiker.inspect (its
                        # binding still matches); replaying it again is asked for by id only.
                        if seen.replayed_at is not None and seen.death is None and not ids:
                            report.replayed_before += 1
                            continue
                        await replayer.replay(queue, message, replay_copy(message, route))
                        report.replayed += 1
                        report.by_route[str(route)] = report.by_route.get(str(route), 0) + 1
                        if limit is not None and report.replayed >= limit:
                            break
                finally:
                    report.left += queue.held
                if limit is not None and report.replayed >= limit:
                    break
    except ToolError as exc:
        raise ToolError(f"{exc} ({report.replayed} replayed before that)") from None
    return report
