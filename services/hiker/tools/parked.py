"""``hiker parked list|replay``: look at parked sends, and put them back on the send path.

The sender parks a send command in ``hiker.sender.parked`` when Graph refuses it for good (an
expired token, a closed 24 h window, a bad parameter) or retries run out, with Graph's answer in
its headers. Once the cause is fixed (say, a renewed token), ``replay`` publishes the parked
commands to the outbox again.

How the queue is read without losing anything: messages are fetched with ``basic.get`` and held
unacknowledged until the end, then returned (nack with requeue) in the order they came, so a
listing leaves the queue as it found it. Holding them is what stops the broker from handing the
same message out twice in one run. A quorum queue counts every return as a delivery;
``hiker.sender.parked`` has no delivery limit, so the count grows but nothing is ever dropped or
dead-lettered (a policy adding a delivery limit to it would change that: do not add one).

What ``replay`` guarantees, per parked message:
- it is never lost: the parked copy is acked only after the broker confirmed the replayed one;
- the user gets it once: the sender sends at most once per idempotency key (its ``sent:{key}``
  record in Redis, released when it parks a send, written when a send succeeds). A parked copy
  whose key the sender has since recorded as sent is obsolete: ``replay`` removes it without
  publishing. That covers a run that died after publishing but before its ack, once the replayed
  copy went through; if that copy is still on its way, the next run publishes the send again and
  the sender drops whichever copy comes second. So a crash can at worst publish a command twice,
  never send a message twice, and never lose one.
Why not a marker keyed by the time of parking: that header is a float, which AMQP tables carry
as 32 bits (about two minutes of resolution today), so a send parked again soon after a replay
would look replayed already and be dropped. The sender's own record has no such blind spot.
The record lasts as long as the sender keeps it (7 days): a copy whose replay was sent earlier
than that, and whose ack was lost, would be sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Final

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
)
from pydantic import ValidationError
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from hiker.core import topology
from hiker.core.claims import is_done
from hiker.core.contracts import SendMessage
from hiker.core.observability import mask_phone, mask_text, redact
from hiker.core.redis_store import Keys, connect_redis
from hiker.core.settings import CommonSettings, load_settings

DEFAULT_LIST_LIMIT: Final = 50
_CONNECT_TIMEOUT_SECONDS: Final = 10.0


class ParkedError(Exception):
    """The tool could not do its job (broker or Redis away, a publish refused); nothing lost."""


@dataclass(frozen=True)
class ParkedSend:
    """One parked message as an operator sees it: why it was parked, and what it would send."""

    command: SendMessage | None  # None when the body is not a readable SendMessage
    reason: str  # "permanent" or "retries_exhausted"
    graph_code: str  # Graph's error code, or "none"
    graph_status: str  # the HTTP status, or "timeout" / "connection_error"
    graph_message: str
    parked_at: float | None
    attempt: int

    @classmethod
    def from_message(cls, message: AbstractIncomingMessage) -> ParkedSend:
        headers = message.headers or {}
        try:
            command: SendMessage | None = SendMessage.model_validate_json(message.body)
        except ValidationError:
            command = None
        parked_at = headers.get(topology.HEADER_PARKED_AT)
        attempt = headers.get(topology.HEADER_ATTEMPT)
        return cls(
            command=command,
            reason=str(headers.get(topology.HEADER_PARKED_REASON, "unknown")),
            graph_code=str(headers.get(topology.HEADER_GRAPH_CODE, "none")),
            graph_status=str(headers.get(topology.HEADER_GRAPH_STATUS, "none")),
            graph_message=_graph_message(headers.get(topology.HEADER_GRAPH_ERROR)),
            parked_at=_epoch_seconds(parked_at),
            attempt=attempt if isinstance(attempt, int) else 1,
        )

    def matches(self, reasons: Collection[str]) -> bool:
        """No filter matches all; else the Graph code (``190``) or the reason (``permanent``)."""
        return not reasons or self.graph_code in reasons or self.reason in reasons

    def row(self, now: float) -> dict[str, Any]:
        """What ``list`` shows: masked recipient, never the text sent to the user."""
        command = self.command
        return {
            # Clamped: the parking time travels with about a minute of error (see module doc).
            "age_seconds": (
                round(max(0.0, now - self.parked_at), 1) if self.parked_at is not None else None
            ),
            "reason": self.reason,
            "graph_code": self.graph_code,
            "graph_status": self.graph_status,
            "graph_message": self.graph_message,
            "attempt": self.attempt,
            "kind": command.kind if command else None,
            "to": mask_phone(command.to) if command else None,
            "phone_number_id": command.phone_number_id if command else None,
            "idempotency_key": command.idempotency_key if command else None,
            "correlation_id": command.correlation_id if command else None,
            "readable": command is not None,
        }


def _epoch_seconds(raw: object) -> float | None:
    """The parking time: a number, or a decimal string (exact, unlike a float header)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float | Decimal):
        return float(raw)
    if isinstance(raw, str | bytes):
        with contextlib.suppress(ValueError):
            return float(raw)
    return None


def _graph_message(raw: object) -> str:
    if raw is None:
        return ""
    try:
        error = json.loads(raw if isinstance(raw, str | bytes) else str(raw))
    except ValueError:
        return ""
    message = error.get("message") if isinstance(error, dict) else None
    # Graph's details may quote the recipient; the operator needs the gist, not the number.
    return mask_text(str(message)) if message else ""


@dataclass(frozen=True)
class Listing:
    parked: list[ParkedSend]
    total: int  # messages in the queue when the listing started


@dataclass
class ReplayReport:
    replayed: int = 0
    already_sent: int = 0  # a replayed copy was sent before; the obsolete parked copy was acked
    left_parked: int = 0  # not matching, unreadable, or held by another run
    unreadable: int = 0


async def already_sent(redis: Redis, keys: Keys, idempotency_key: str) -> bool:
    """Whether the sender recorded ``idempotency_key`` as sent (not merely claimed in flight)."""
    return await is_done(redis, keys.sent(idempotency_key))


@contextlib.asynccontextmanager
async def _connect(amqp_url: str) -> AsyncIterator[AbstractConnection]:
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(amqp_url, timeout=_CONNECT_TIMEOUT_SECONDS), _CONNECT_TIMEOUT_SECONDS
        )
    except Exception as exc:
        raise ParkedError(
            f"RabbitMQ not usable at {redact(amqp_url)} ({type(exc).__name__}); "
            "`hiker doctor` says why"
        ) from None
    try:
        yield connection
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        # Unacked messages go back to the queue with the connection: nothing is lost.
        raise ParkedError(
            f"RabbitMQ failed midway ({type(exc).__name__}); what was not done stays parked"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _parked_queue(channel: AbstractChannel) -> tuple[AbstractQueue, int] | None:
    """The parked queue and its depth, or None when it was never declared (nothing parked)."""
    try:
        queue = await channel.declare_queue(topology.SENDER_PARKED_QUEUE, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    return queue, int(queue.declaration_result.message_count or 0)


async def _return_all(held: Sequence[AbstractIncomingMessage]) -> None:
    # In fetch order, so the queue keeps its order for the next reader.
    for message in held:
        with contextlib.suppress(Exception):
            await message.nack(requeue=True)


async def list_parked(
    amqp_url: str, *, limit: int = DEFAULT_LIST_LIMIT, reasons: Collection[str] = ()
) -> Listing:
    """Up to ``limit`` parked messages matching ``reasons``, oldest first; the queue unchanged."""
    async with _connect(amqp_url) as connection:
        channel = await connection.channel()
        found = await _parked_queue(channel)
        if found is None:
            return Listing([], 0)
        queue, total = found
        held: list[AbstractIncomingMessage] = []
        shown: list[ParkedSend] = []
        try:
            # Bounded by the depth at the start: messages parked meanwhile wait for the next run.
            for _ in range(total):
                if len(shown) >= limit:
                    break
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
                parked = ParkedSend.from_message(message)
                if parked.matches(reasons):
                    shown.append(parked)
        finally:
            await _return_all(held)
        return Listing(shown, total)


async def replay_parked(
    amqp_url: str,
    redis_url: str,
    redis_prefix: str,
    *,
    reasons: Collection[str] = (),
    limit: int | None = None,
) -> ReplayReport:
    """Publish matching parked sends to the outbox again (attempt 1), at most ``limit`` of them.

    See the module docstring for what happens on a crash and why nothing is lost or sent twice.
    """
    report = ReplayReport()
    redis = connect_redis(redis_url)
    keys = Keys(redis_prefix)
    try:
        async with _connect(amqp_url) as connection:
            reading = await connection.channel()
            found = await _parked_queue(reading)
            if found is None:
                return report
            queue, total = found
            publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
            try:
                commands = await publishing.get_exchange(topology.COMMANDS_EXCHANGE, ensure=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise ParkedError(
                    f"exchange {topology.COMMANDS_EXCHANGE} missing: start the sender first"
                ) from None
            held: list[AbstractIncomingMessage] = []
            try:
                for _ in range(total):
                    if limit is not None and report.replayed >= limit:
                        break
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    if not await _replay_one(message, commands, redis, keys, reasons, report):
                        held.append(message)
            finally:
                report.left_parked += len(held)
                await _return_all(held)
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
        raise ParkedError(
            f"Redis not usable at {redact(redis_url)} ({type(exc).__name__}); nothing was lost"
        ) from None
    finally:
        await redis.aclose()
    return report


async def _replay_one(
    message: AbstractIncomingMessage,
    commands: aio_pika.abc.AbstractExchange,
    redis: Redis,
    keys: Keys,
    reasons: Collection[str],
    report: ReplayReport,
) -> bool:
    """Replay ``message`` if it matches; True when it was settled (acked), False to keep it."""
    parked = ParkedSend.from_message(message)
    if not parked.matches(reasons):
        return False
    command = parked.command
    if command is None:
        report.unreadable += 1
        return False
    if await already_sent(redis, keys, command.idempotency_key):
        await message.ack()
        report.already_sent += 1
        return True
    try:
        await commands.publish(
            aio_pika.Message(
                message.body,
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                type=SendMessage.type_name(),
                message_id=command.idempotency_key,
                correlation_id=command.correlation_id,
                # Fresh headers: a new first attempt, and none of the parked queue's counters.
                headers={
                    topology.HEADER_ATTEMPT: 1,
                    topology.HEADER_CORRELATION_ID: command.correlation_id,
                },
            ),
            topology.RK_SEND,
            mandatory=True,
        )
    except (aio_pika.exceptions.PublishError, aio_pika.exceptions.DeliveryError) as exc:
        raise ParkedError(
            f"the broker did not take the replayed send ({type(exc).__name__}): "
            "is the sender's outbox declared and not full? Nothing was lost"
        ) from None
    await message.ack()
    report.replayed += 1
    return True


def render_listing(listing: Listing, now: float) -> str:
    if not listing.parked:
        return f"nothing parked matches ({listing.total} in {topology.SENDER_PARKED_QUEUE})"
    rows = [parked.row(now) for parked in listing.parked]
    table = [
        ("AGE", "REASON", "CODE", "HTTP", "KIND", "TO", "IDEMPOTENCY KEY", "GRAPH ERROR"),
        *(
            (
                _age(row["age_seconds"]),
                row["reason"],
                row["graph_code"],
                row["graph_status"],
                row["kind"] or "-",
                row["to"] or "-",
                row["idempotency_key"] or "(unreadable body)",
                _shorten(row["graph_message"], 60),
            )
            for row in rows
        ),
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    lines.append(f"\n{len(rows)} shown of {listing.total} in {topology.SENDER_PARKED_QUEUE}")
    return "\n".join(lines)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    reason_help = (
        "only messages parked for this Graph error code (e.g. 190) or reason "
        "(permanent, retries_exhausted); repeatable"
    )
    show = actions.add_parser("list", help="show parked sends; leaves them parked")
    show.add_argument("--limit", type=_positive, default=DEFAULT_LIST_LIMIT, help="at most N")
    show.add_argument("--reason", action="append", default=[], help=reason_help)
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    replay = actions.add_parser(
        "replay", help="send parked messages again, once the cause is fixed"
    )
    replay.add_argument("--reason", action="append", default=[], help=reason_help)
    replay.add_argument("--limit", type=_positive, default=None, help="replay at most N")
    replay.add_argument("--json", action="store_true", help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """``hiker parked list|replay``; 0 on success, 1 when the broker or Redis failed it."""
    settings = load_settings(CommonSettings)
    amqp_url = settings.amqp_url.get_secret_value()
    try:
        if args.action == "list":
            listing = asyncio.run(list_parked(amqp_url, limit=args.limit, reasons=args.reason))
            now = time.time()
            if args.json:
                print(
                    json.dumps(
                        {"total": listing.total, "parked": [p.row(now) for p in listing.parked]},
                        indent=2,
                    )
                )
            else:
                print(render_listing(listing, now))
            return 0
        report = asyncio.run(
            replay_parked(
                amqp_url,
                settings.redis_url.get_secret_value(),
                settings.redis_prefix,
                reasons=args.reason,
                limit=args.limit,
            )
        )
    except ParkedError as exc:
        print(f"hiker parked {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        print(
            f"replayed {report.replayed}; already sent before (parked copy removed) "
            f"{report.already_sent}; left parked {report.left_parked}"
            + (f" ({report.unreadable} unreadable)" if report.unreadable else "")
        )
    return 0
