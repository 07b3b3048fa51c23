"""Conversation composition root: ``create_app(settings)`` wires consumers, handlers and stores."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from hiker.conversation.consumers import inbound_routes, sent_routes, timers_routes
from hiker.conversation.handlers import ConversationHandlers
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.outbox import ConversationOutbox
from hiker.conversation.responder import RuleBookResponder, as_responder, load_responder
from hiker.conversation.rulesfile import RuleSource, default_rulebook
from hiker.conversation.state import ConversationStore
from hiker.core import topology
from hiker.core.broker import Broker, keep_trying
from hiker.core.claims import ClaimStore
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.observability import add_ops_routes, new_registry
from hiker.core.publisher import Bundler
from hiker.core.redis_store import Keys, RedisClient, connect_redis, ping
from hiker.core.settings import ConversationSettings

log = logging.getLogger(__name__)

PENDING_SAMPLE_SECONDS = 5.0


def create_app(
    settings: ConversationSettings,
    *,
    broker: Broker | None = None,
    redis: RedisClient | None = None,
    registry: CollectorRegistry | None = None,
    responder: object | None = None,
) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts consuming.

    The rules file (``settings.rules_file``) is read here, so an invalid one stops the start
    with RulesFileError naming file and line; ``responder`` overrides ``settings.responder``.
    """
    registry = registry or new_registry()
    broker = broker or Broker.of_service(settings, "hiker-conversation")
    redis = redis or connect_redis(settings.redis_target())
    keys = Keys(settings.redis_prefix, adopt_legacy=settings.adopts_legacy_keys)
    metrics = ConversationMetrics(registry)
    rules = RuleSource(
        default_rulebook(settings.followup_text, settings.idle_timeout_seconds),
        settings.rules_file,
        on_reload=lambda outcome: metrics.rules_reloads.labels(outcome).inc(),
    )
    answering = (
        as_responder(responder)
        if responder is not None
        else load_responder(settings.responder, rules)
        if settings.responder
        else RuleBookResponder(rules)
    )

    bundler = Bundler(broker.publish, linger_seconds=settings.publish_linger_ms / 1000)
    outbox = ConversationOutbox(broker, bundler)
    gate = DependencyGate(DependencyMetrics(registry))

    handlers = ConversationHandlers(
        rules=rules,
        responder=answering,
        conversations=ConversationStore(
            redis,
            keys,
            idle_timeout_seconds=settings.idle_timeout_seconds,
            ttl_seconds=settings.conversation_ttl_seconds,
            history_length=settings.history_length,
        ),
        claims=ClaimStore(
            redis,
            lease_seconds=settings.claim_lease_seconds,
            done_ttl_seconds=settings.dedupe_ttl_seconds,
            legacy=keys.legacy,
        ),
        keys=keys,
        send=outbox.send,
        schedule=outbox.schedule,
        metrics=metrics,
        read_receipts=settings.read_receipts,
    )

    app = web.Application()
    add_ops_routes(
        app,
        registry,
        {
            "rabbitmq": broker.is_ready,
            "redis": lambda: ping(redis),
            "dependencies": gate.is_ready,
        },
    )

    def wait_queues() -> list[topology.QueueSpec]:
        """The wait queue of every idle timeout the rules configure now."""
        book = rules.current
        timeouts = {book.default.idle_timeout_seconds}
        timeouts.update(policy.idle_timeout_seconds for policy in book.numbers.values())
        delays = sorted({topology.delay_ms(t) for t in timeouts})
        return [topology.timer_wait_queue(delay) for delay in delays]

    async def start() -> None:
        await broker.connect(topology.CONVERSATION_TOPOLOGY)
        for queue in wait_queues():
            await broker.declare_queue(queue)
        await broker.consume(
            topology.CONVERSATION_INBOUND,
            inbound_routes(handlers),
            prefetch=settings.prefetch,
            gate=gate,
        )
        await broker.consume(
            topology.CONVERSATION_TIMERS,
            timers_routes(handlers),
            prefetch=settings.prefetch,
            gate=gate,
        )
        await broker.consume(
            topology.CONVERSATION_SENT,
            sent_routes(handlers),
            prefetch=settings.prefetch,
            gate=gate,
        )
        broker.mark_serving()

    async def sample_pending() -> None:
        while True:
            with contextlib.suppress(Exception):
                if broker.is_connected():
                    depths = [await broker.queue_depth(q.name) for q in wait_queues()]
                    metrics.pending.set(sum(d or 0 for d in depths))
            await asyncio.sleep(PENDING_SAMPLE_SECONDS)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(keep_trying(start, "RabbitMQ")),
            asyncio.create_task(sample_pending()),
            asyncio.create_task(rules.watch(settings.rules_reload_seconds)),
        ]
        yield
        for task in tasks:
            task.cancel()
        await broker.stop_consuming()
        await bundler.aclose()
        await broker.close()
        await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app
