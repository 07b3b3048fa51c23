"""Conversation, declared: inbound messages, fired timers and api sends to their handlers, which
answer through the responder and keep state, claims and timers in Redis and the broker.

The rules file (``HIKER_RULES_FILE``) is read when the service is built, so an invalid one
stops the start with RulesFileError naming file and line. The answers come from ``HIKER_BOT``
(a ``hiker.bot.Bot``) or ``HIKER_RESPONDER`` (the lower layer), else the rules alone;
``responder`` (tests) overrides both. With ``HIKER_AI_*`` set, what none of them answers goes
to the model (``conversation.ai``) through a queue and consumer of its own; ``model`` (tests, or
a client of one's own) replaces the HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Unpack

import aiohttp
from aiohttp import web

from hiker.bot.routing import Bot, add_bot_path, load_bot
from hiker.conversation.ai.assemble import assemble_ai
from hiker.conversation.consumers import ai_routes, inbound_routes, sent_routes, timers_routes
from hiker.conversation.handlers import ConversationHandlers
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.outbox import ConversationOutbox
from hiker.conversation.responder import RuleBookResponder, as_responder, load_responder
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import ConversationStore
from hiker.core import kernel, topology
from hiker.core.ai_model import ModelClient
from hiker.core.broker import Broker
from hiker.core.claims import ClaimStore
from hiker.core.graph_media import GraphMedia, graph_media
from hiker.core.kernel import Consume, Kit, Parts, Plan, Service
from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore
from hiker.core.settings import ConversationSettings

# How often the gauge of pending timers is sampled from the broker.
PENDING_SAMPLE_SECONDS = 5.0


def conversation(
    responder: object | None = None, model: ModelClient | None = None
) -> Service[ConversationSettings]:
    """The service, answering by ``responder`` when given (tests), else as configured; the
    AI responder asks ``model`` when given, else the HTTP client of ``HIKER_AI_BASE_URL``."""

    def build(kit: Kit[ConversationSettings]) -> Plan:
        return _build(kit, responder, model)

    return Service(
        "conversation",
        ConversationSettings,
        build,
    )


def _build(
    kit: Kit[ConversationSettings], responder: object | None, model: ModelClient | None
) -> Plan:
    settings = kit.settings
    keys = Keys(
        settings.redis_prefix,
        adopt_legacy=settings.adopts_legacy_keys,
        # Moving a conversation to another user id renames across hash slots.
        adopt_phone_keys=not settings.redis_cluster,
    )
    metrics = ConversationMetrics(kit.registry)
    add_bot_path(settings.bot_path)
    ai_on = settings.ai_enabled or model is not None
    bot = load_bot(settings.bot) if settings.bot and responder is None else None
    if bot is None and ai_on and responder is None and not settings.responder:
        # A bot without handlers answers as the rules alone do, and lets the model answer the
        # reminders it set (``remind``), which a bare rule book would drop.
        bot = Bot()
    media = _media(kit) if bot is not None or ai_on else None
    rules = RuleSource(
        default_rulebook(settings.followup_text, settings.idle_timeout_seconds),
        # HIKER_RULES_FILE, when set, overrides the file the bot's code names.
        settings.rules_file or (bot.rules_file if bot is not None else None),
        on_reload=lambda outcome: metrics.rules_reloads.labels(outcome).inc(),
    )
    answering = (
        as_responder(responder)
        if responder is not None
        else bot.with_rules(rules, media)
        if bot is not None
        else load_responder(settings.responder, rules)
        if settings.responder
        else RuleBookResponder(rules)
    )
    outbox = ConversationOutbox(kit.broker, kit.bundler())
    ownership = OwnershipStore(kit.redis, keys, announce=outbox.announce)
    conversations = ConversationStore(
        kit.redis,
        keys,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        ttl_seconds=settings.conversation_ttl_seconds,
        history_length=settings.history_length,
    )
    ai = (
        assemble_ai(
            settings,
            redis=kit.redis,
            keys=keys,
            rules=rules,
            conversations=conversations,
            outbox=outbox,
            handoffs=ownership,
            metrics=metrics,
            model=model,
            session=kit.client_session,
            media=media,
            bot_tools=bot.tools if bot is not None else (),
        )
        if ai_on
        else None
    )
    if ai is not None and bot is not None:
        bot.ai.attach(
            ai.runner,
            system_prompt=settings.ai_prompt(),
            history_turns=settings.ai_history_turns,
            on_result=ai.spend,
        )
    handlers = ConversationHandlers(
        rules=rules,
        responder=answering,
        conversations=conversations,
        claims=ClaimStore(
            kit.redis,
            lease_seconds=settings.claim_lease_seconds,
            done_ttl_seconds=settings.dedupe_ttl_seconds,
            legacy=keys.legacy,
        ),
        keys=keys,
        send=outbox.send,
        schedule=outbox.schedule,
        metrics=metrics,
        read_receipts=settings.read_receipts,
        responder_timeout_seconds=settings.responder_deadline_seconds,
        handoffs=ownership,
        handoff_minutes=settings.handoff_minutes,
        ai=ai.turns if ai is not None else None,
    )

    def wait_queues() -> list[topology.QueueSpec]:
        """The wait queue of every idle timeout the rules configure now."""
        book = rules.current
        timeouts = {book.default.idle_timeout_seconds}
        timeouts.update(policy.idle_timeout_seconds for policy in book.numbers.values())
        delays = sorted({topology.delay_ms(t) for t in timeouts})
        return [topology.timer_wait_queue(delay) for delay in delays]

    async def declare_wait_queues() -> None:
        for queue in wait_queues():
            await kit.broker.declare_queue(queue)

    prefetch = settings.prefetch
    consumes = [
        Consume(topology.CONVERSATION_INBOUND, inbound_routes(handlers), prefetch),
        Consume(topology.CONVERSATION_TIMERS, timers_routes(handlers), prefetch),
        Consume(topology.CONVERSATION_SENT, sent_routes(handlers), prefetch),
    ]
    if ai is not None:
        # Model calls take seconds: a channel and prefetch of their own, so that turns waiting
        # on the model never hold up the inbound queue (docs/architecture.md, "Concurrency").
        consumes.append(
            Consume(topology.CONVERSATION_AI, ai_routes(ai.turns), settings.ai_prefetch)
        )
    return Plan(
        topology=topology.CONVERSATION_AI_TOPOLOGY
        if ai is not None
        else topology.CONVERSATION_TOPOLOGY,
        consumes=consumes,
        on_connect=(declare_wait_queues,),
        background=(
            _every(PENDING_SAMPLE_SECONDS, _sample_pending(kit.broker, wait_queues, metrics)),
            _every(PENDING_SAMPLE_SECONDS, _sample_owned(ownership, metrics)),
            lambda: rules.watch(settings.rules_reload_seconds),
        ),
        closing=(ai.close,) if ai is not None else (),
    )


def _media(kit: Kit[ConversationSettings]) -> GraphMedia:
    """What a bot's ``download()`` fetches through: Graph with the numbers' tokens, into the
    media store (the session is made on the first download)."""
    # No total: a large medium may take longer than one Graph call; a stalled one may not.
    seconds = kit.settings.graph_timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)
    return graph_media(kit.settings, lambda: kit.client_session(timeout=timeout))


def _sample_pending(
    broker: Broker,
    wait_queues: Callable[[], list[topology.QueueSpec]],
    metrics: ConversationMetrics,
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def sample() -> None:
        if broker.is_connected():
            depths = [await broker.queue_depth(q.name) for q in wait_queues()]
            metrics.pending.set(sum(d or 0 for d in depths))

    return sample


def _sample_owned(
    ownership: OwnershipStore, metrics: ConversationMetrics
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def sample() -> None:
        metrics.human_owned.set(await ownership.count_owned(time.time()))

    return sample


def _every(
    seconds: float, step: Callable[[], Coroutine[Any, Any, None]]
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A loop running ``step`` every ``seconds``; a failed step waits for the next turn."""

    async def loop() -> None:
        while True:
            with contextlib.suppress(Exception):
                await step()
            await asyncio.sleep(seconds)

    return loop


SERVICE = conversation()


def create_app(
    settings: ConversationSettings,
    *,
    responder: object | None = None,
    model: ModelClient | None = None,
    **parts: Unpack[Parts],
) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts consuming."""
    return kernel.create_app(conversation(responder, model), settings, **parts)
