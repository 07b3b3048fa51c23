"""The broker topology: every exchange, queue, binding and argument, as values.

Services declare the parts they use at start (declaration is idempotent), so any of them can start
first. A queue declared twice with different arguments is refused by RabbitMQ
(PRECONDITION_FAILED), which is why the arguments live here once and nowhere else.

Facts this layout is built around:
- A quorum queue expires messages only at its head, so a wait queue holds one delay value only and
  is named by it (``hiker.timers.wait.600000ms``); mixed TTLs in one queue would fire late.
- At-least-once dead-lettering (so a broker failure loses no timer) needs a quorum queue and
  ``x-overflow: reject-publish``; with the default drop-head RabbitMQ silently falls back to
  at-most-once. ``x-max-length`` bounds memory; when full, publishers get a nack, not data loss.
- A wait queue never gets ``x-expires``: RabbitMQ would delete it, timers and all, while idle.
- Quorum queues count redeliveries; ``x-delivery-limit`` is set explicitly (RabbitMQ before 4.0 has
  no default) so a poison message ends in ``hiker.poison`` instead of looping.
- RabbitMQ 4.0 gave every quorum queue a default delivery limit of 20, counted (up to 4.2) on
  every return, so a parked message looked at 20 times would be dropped. The queues that hold
  messages for people get ``x-delivery-limit: -1`` there (no limit); RabbitMQ 3.x reads ``-1``
  as "drop at the first return", so on 3.x they get no limit argument at all (``for_server``).
- ``x-quorum-initial-group-size`` (how many nodes hold a new quorum queue) is only declared when
  configured (``for_server``'s ``quorum_group_size``). Without it RabbitMQ uses its own default,
  ``quorum_queue.initial_cluster_size``, capped by the cluster's size. RabbitMQ (3.x
  and 4.x) counts it among the arguments a declaration must repeat exactly: a queue created
  without it refuses a declaration with it, and the other way round. So the value is chosen
  once, before the first start, and kept; later changes of membership are the broker's
  business (``rabbitmq-queues grow``, or 4.x's ``target-group-size`` policy), not a declare's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

INBOUND_EXCHANGE: Final = "hiker.inbound"
COMMANDS_EXCHANGE: Final = "hiker.commands"
TIMERS_EXCHANGE: Final = "hiker.timers"
DEAD_EXCHANGE: Final = "hiker.dead"
# What became of sends (MessageSent, SendParked), for whoever records them (``hiker api``);
# published whether or not a queue is bound to it.
OUTCOMES_EXCHANGE: Final = "hiker.outcomes"

# Routing keys. Inbound events are routed by kind so that consumers bind only what they handle.
RK_MESSAGE_PREFIX: Final = "message"  # message.<type>
RK_STATUS_PREFIX: Final = "status"  # status.<status>
RK_ERROR: Final = "error"
RK_CHANGE_PREFIX: Final = "change"  # change.<field>
RK_UNKNOWN: Final = "unknown"
RK_OWNER_PREFIX: Final = "owner"  # owner.<bot|human>, on the outcomes exchange
RK_ECHO_PREFIX: Final = "echo"  # echo.<type>: a message a person sent from the Business app
RK_CONTROL_PREFIX: Final = "control"  # control.<taken|passed>: Conversation Routing moved a thread
# template.<field>: a template's status, quality or category changed (Meta's template webhooks).
RK_TEMPLATE_PREFIX: Final = "template"
RK_SEND: Final = "send"
RK_FIRED: Final = "fired"
RK_AI: Final = "ai"  # an AI turn due (debounced, or retried), on the timers exchange
RK_POISON: Final = "poison"
RK_PARKED: Final = "parked"
RK_SENT_PREFIX: Final = "sent"  # sent.<kind>, on the outcomes exchange
RK_PARKED_PREFIX: Final = "parked"  # parked.<kind>, on the outcomes exchange

CONVERSATION_INBOUND_QUEUE: Final = "hiker.conversation.inbound"
CONVERSATION_TIMERS_QUEUE: Final = "hiker.conversation.timers"
CONVERSATION_SENT_QUEUE: Final = "hiker.conversation.sent"
SENDER_OUTBOX_QUEUE: Final = "hiker.sender.outbox"
SENDER_PARKED_QUEUE: Final = "hiker.sender.parked"
API_RECORDS_QUEUE: Final = "hiker.api.history"
INSPECT_QUEUE: Final = "hiker.inspect"
POISON_QUEUE: Final = "hiker.poison"
TIMER_WAIT_QUEUE_PREFIX: Final = "hiker.timers.wait."
SENDER_RETRY_QUEUE_PREFIX: Final = "hiker.sender.retry."
CONVERSATION_AI_QUEUE: Final = "hiker.conversation.ai"
AI_WAIT_QUEUE_PREFIX: Final = "hiker.ai.wait."

DELIVERY_LIMIT: Final = 10
MAX_LENGTH: Final = 1_000_000
WAIT_MAX_LENGTH: Final = 5_000_000

# Headers carried on every message of a conversation's journey.
HEADER_CORRELATION_ID: Final = "x-correlation-id"
HEADER_ATTEMPT: Final = "x-hiker-attempt"
# On a send deferred until its pacing slot: that slot, microseconds on Redis's clock.
HEADER_PACED_UNTIL: Final = "x-hiker-paced-until"
HEADER_PARKED_REASON: Final = "x-hiker-parked-reason"
HEADER_GRAPH_CODE: Final = "x-hiker-graph-code"
HEADER_GRAPH_STATUS: Final = "x-hiker-graph-status"
HEADER_GRAPH_ERROR: Final = "x-hiker-graph-error"
HEADER_PARKED_AT: Final = "x-hiker-parked-at"
# On copies ``hiker poison replay`` published: when, as a decimal string (exact, unlike a float).
HEADER_REPLAYED_AT: Final = "x-hiker-replayed-at"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: Mapping[str, str | int]
    # (exchange, routing key) pairs.
    bindings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...] = field(default=())


EXCHANGES: Final = (
    ExchangeSpec(INBOUND_EXCHANGE, "topic"),
    ExchangeSpec(COMMANDS_EXCHANGE, "direct"),
    ExchangeSpec(TIMERS_EXCHANGE, "direct"),
    ExchangeSpec(DEAD_EXCHANGE, "direct"),
    ExchangeSpec(OUTCOMES_EXCHANGE, "topic"),
)


def _quorum(
    extra: Mapping[str, str | int] | None = None, *, max_length: int = MAX_LENGTH
) -> dict[str, str | int]:
    return {
        "x-queue-type": "quorum",
        "x-overflow": "reject-publish",
        "x-max-length": max_length,
        **(extra or {}),
    }


def _consumed(dead_letter_key: str = RK_POISON) -> dict[str, str | int]:
    """Arguments of a queue with consumers: poison messages dead-letter, at least once."""
    return _quorum(
        {
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": dead_letter_key,
            "x-dead-letter-strategy": "at-least-once",
        }
    )


POISON = QueueSpec(POISON_QUEUE, _quorum(), ((DEAD_EXCHANGE, RK_POISON),))
INSPECT = QueueSpec(
    INSPECT_QUEUE,
    _quorum(),
    ((INBOUND_EXCHANGE, f"{RK_CHANGE_PREFIX}.#"), (INBOUND_EXCHANGE, RK_UNKNOWN)),
)
CONVERSATION_INBOUND = QueueSpec(
    CONVERSATION_INBOUND_QUEUE,
    _consumed(),
    (
        (INBOUND_EXCHANGE, f"{RK_MESSAGE_PREFIX}.#"),
        (INBOUND_EXCHANGE, f"{RK_STATUS_PREFIX}.#"),
        (INBOUND_EXCHANGE, RK_ERROR),
        (INBOUND_EXCHANGE, f"{RK_ECHO_PREFIX}.#"),
        (INBOUND_EXCHANGE, f"{RK_CONTROL_PREFIX}.#"),
    ),
)
CONVERSATION_TIMERS = QueueSpec(
    CONVERSATION_TIMERS_QUEUE, _consumed(), ((TIMERS_EXCHANGE, RK_FIRED),)
)
# AI turns that are due, consumed apart from the inbound queue (a prefetch of their own) so that
# a model taking seconds never holds up a rules reply to another user.
CONVERSATION_AI = QueueSpec(CONVERSATION_AI_QUEUE, _consumed(), ((TIMERS_EXCHANGE, RK_AI),))
SENDER_OUTBOX = QueueSpec(SENDER_OUTBOX_QUEUE, _consumed(), ((COMMANDS_EXCHANGE, RK_SEND),))
# Messages sent from outside conversation (``hiker api``), for its history.
CONVERSATION_SENT = QueueSpec(
    CONVERSATION_SENT_QUEUE, _consumed(), ((OUTCOMES_EXCHANGE, f"{RK_SENT_PREFIX}.api"),)
)
SENDER_PARKED = QueueSpec(SENDER_PARKED_QUEUE, _quorum(), ((DEAD_EXCHANGE, RK_PARKED),))


# ``hiker api``'s own copy of what it records: every inbound message, status and error, and
# every outcome of a send. A full queue drops its oldest record rather than refuse the publish:
# with reject-publish, an api long away would make ingress answer 503 and the sender stall on
# its outcomes, putting the database on the reply path. What overflows is dead-lettered to the
# poison queue (reason ``maxlen``), from which ``hiker poison replay`` brings it back; without
# reject-publish RabbitMQ dead-letters at most once, which is all a record needs.
API_RECORDS = QueueSpec(
    API_RECORDS_QUEUE,
    _quorum(
        {
            "x-overflow": "drop-head",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": RK_POISON,
        }
    ),
    (
        (INBOUND_EXCHANGE, f"{RK_MESSAGE_PREFIX}.#"),
        (INBOUND_EXCHANGE, f"{RK_STATUS_PREFIX}.#"),
        (INBOUND_EXCHANGE, RK_ERROR),
        (INBOUND_EXCHANGE, f"{RK_ECHO_PREFIX}.#"),
        (INBOUND_EXCHANGE, f"{RK_TEMPLATE_PREFIX}.#"),
        (OUTCOMES_EXCHANGE, "#"),
    ),
)


def delay_ms(seconds: float) -> int:
    """Delays name their queues in whole milliseconds (never 0: a TTL of 0 means "now or drop")."""
    return max(1, round(seconds * 1000))


def timer_wait_queue(delay_ms: int) -> QueueSpec:
    """The wait queue for idle timers of exactly ``delay_ms``; expired ones go to the fired queue.

    Nobody consumes it. It is published to through the default exchange by name.
    """
    return QueueSpec(
        f"{TIMER_WAIT_QUEUE_PREFIX}{delay_ms}ms",
        _quorum(
            {
                "x-dead-letter-exchange": TIMERS_EXCHANGE,
                "x-dead-letter-routing-key": RK_FIRED,
                "x-dead-letter-strategy": "at-least-once",
            },
            max_length=WAIT_MAX_LENGTH,
        ),
    )


def ai_wait_queue(delay_ms: int) -> QueueSpec:
    """Where an AI turn waits ``delay_ms`` (the debounce, or a retry's backoff), then goes to
    ``hiker.conversation.ai``. Nobody consumes it; one delay per queue, like the timers'."""
    return QueueSpec(
        f"{AI_WAIT_QUEUE_PREFIX}{delay_ms}ms",
        _quorum(
            {
                "x-dead-letter-exchange": TIMERS_EXCHANGE,
                "x-dead-letter-routing-key": RK_AI,
                "x-dead-letter-strategy": "at-least-once",
            },
            max_length=WAIT_MAX_LENGTH,
        ),
    )


def sender_retry_queue(delay_ms: int) -> QueueSpec:
    """A retry wait queue: a send command waits ``delay_ms`` there, then returns to the outbox."""
    return QueueSpec(
        f"{SENDER_RETRY_QUEUE_PREFIX}{delay_ms}ms",
        _quorum(
            {
                "x-dead-letter-exchange": COMMANDS_EXCHANGE,
                "x-dead-letter-routing-key": RK_SEND,
                "x-dead-letter-strategy": "at-least-once",
            }
        ),
    )


# Events for a backend (``hiker events``; the design is in ``hiker.events``' docstring).
# hiker.events.inbound   copies of inbound messages, statuses and parked sends; each gets its id
#                        and seq there, then one copy per endpoint goes to
# hiker.events (direct)  routed by endpoint name to
# hiker.events.deliver.<endpoint>          one queue per endpoint, its own consumer;
# hiker.events.retry.<endpoint>.<delay>ms  where a failed POST waits, then goes back;
# hiker.events.parked                      what a person must look at (``hiker parked --events``).
EVENTS_EXCHANGE: Final = "hiker.events"
EVENTS_INBOUND_QUEUE: Final = "hiker.events.inbound"
EVENTS_PARKED_QUEUE: Final = "hiker.events.parked"
EVENTS_DELIVER_QUEUE_PREFIX: Final = "hiker.events.deliver."
EVENTS_RETRY_QUEUE_PREFIX: Final = "hiker.events.retry."
RK_EVENTS_PARKED: Final = "events.parked"
HEADER_FIRST_ATTEMPT_AT: Final = "x-hiker-first-attempt-at"
HEADER_ENDPOINT: Final = "x-hiker-endpoint"
HEADER_ENDPOINT_STATUS: Final = "x-hiker-endpoint-status"

EVENTS_EXCHANGES: Final = (*EXCHANGES, ExchangeSpec(EVENTS_EXCHANGE, "direct"))

# Overflow drops the oldest rather than refusing the publish, as for ``API_RECORDS``: a full
# events queue must never make ingress answer 503 nor stall the sender's outcomes. What
# overflows is dead-lettered (at most once: RabbitMQ's rule without reject-publish).
EVENTS_INBOUND = QueueSpec(
    EVENTS_INBOUND_QUEUE,
    _quorum(
        {
            "x-overflow": "drop-head",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": RK_POISON,
        }
    ),
    (
        (INBOUND_EXCHANGE, f"{RK_MESSAGE_PREFIX}.#"),
        (INBOUND_EXCHANGE, f"{RK_STATUS_PREFIX}.#"),
        (OUTCOMES_EXCHANGE, f"{RK_PARKED_PREFIX}.#"),
        (OUTCOMES_EXCHANGE, f"{RK_OWNER_PREFIX}.#"),
    ),
)
EVENTS_PARKED = QueueSpec(EVENTS_PARKED_QUEUE, _quorum(), ((DEAD_EXCHANGE, RK_EVENTS_PARKED),))


def events_deliver_queue(endpoint: str) -> QueueSpec:
    """The queue of endpoint ``endpoint`` (its name, ``core.endpoints``): overflow, poison and
    a delivery limit all end in ``hiker.events.parked``, where ``hiker parked`` shows them."""
    return QueueSpec(
        f"{EVENTS_DELIVER_QUEUE_PREFIX}{endpoint}",
        _quorum(
            {
                "x-overflow": "drop-head",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": RK_EVENTS_PARKED,
            }
        ),
        ((EVENTS_EXCHANGE, endpoint),),
    )


def events_retry_queue(endpoint: str, delay_ms: int) -> QueueSpec:
    """Where an event for ``endpoint`` waits ``delay_ms``, then returns to that endpoint's queue
    (dead-lettered through the default exchange, which routes by queue name)."""
    return QueueSpec(
        f"{EVENTS_RETRY_QUEUE_PREFIX}{endpoint}.{delay_ms}ms",
        _quorum(
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": f"{EVENTS_DELIVER_QUEUE_PREFIX}{endpoint}",
                "x-dead-letter-strategy": "at-least-once",
            }
        ),
    )


def events_topology(endpoints: tuple[str, ...]) -> Topology:
    """What ``hiker events`` declares for the endpoints named ``endpoints``."""
    return Topology(
        EVENTS_EXCHANGES,
        (
            POISON,
            EVENTS_PARKED,
            *(events_deliver_queue(name) for name in endpoints),
            EVENTS_INBOUND,
        ),
    )


# Queues whose messages wait for a person (parked sends, poison, unknown shapes): looking at them
# (``hiker parked list``, the management UI's "Get messages") must never count towards dropping.
HELD_FOR_PEOPLE: Final = frozenset(
    {POISON_QUEUE, INSPECT_QUEUE, SENDER_PARKED_QUEUE, EVENTS_PARKED_QUEUE}
)


def server_version(text: str) -> tuple[int, int]:
    """``"4.1.0"`` → ``(4, 1)``; what cannot be read counts as ``(0, 0)`` (oldest rules)."""
    found = re.match(r"\s*(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def for_server(
    spec: QueueSpec, version: tuple[int, int], *, quorum_group_size: int | None = None
) -> QueueSpec:
    """``spec`` as it is declared on a broker of ``version``, its quorum queues created on
    ``quorum_group_size`` nodes when given (see the module's notes)."""
    arguments = dict(spec.arguments)
    if spec.name in HELD_FOR_PEOPLE and version >= (4, 0):
        arguments["x-delivery-limit"] = -1
    if quorum_group_size is not None and arguments.get("x-queue-type") == "quorum":
        arguments["x-quorum-initial-group-size"] = quorum_group_size
    if arguments == spec.arguments:
        return spec
    return replace(spec, arguments=arguments)


INGRESS_TOPOLOGY: Final = Topology(EXCHANGES, (POISON, INSPECT, CONVERSATION_INBOUND))
CONVERSATION_TOPOLOGY: Final = Topology(
    EXCHANGES,
    (POISON, CONVERSATION_INBOUND, CONVERSATION_TIMERS, CONVERSATION_SENT, SENDER_OUTBOX),
)
# With the AI responder on (``HIKER_AI_*``): its queue of due turns too.
CONVERSATION_AI_TOPOLOGY: Final = Topology(
    EXCHANGES, (*CONVERSATION_TOPOLOGY.queues, CONVERSATION_AI)
)
SENDER_TOPOLOGY: Final = Topology(EXCHANGES, (POISON, SENDER_OUTBOX, SENDER_PARKED))
# The api records from its own queue and sends through the sender's outbox (declared here too,
# so that a send is routed even before the sender first started).
API_TOPOLOGY: Final = Topology(EXCHANGES, (POISON, API_RECORDS, SENDER_OUTBOX))
