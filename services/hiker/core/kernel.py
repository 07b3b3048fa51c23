"""The service kernel: every service is a declaration, and this module builds and runs it.

A service says what it consumes (queue, routes, prefetch), what it serves over HTTP, what it
needs before it connects and what it runs beside; the kernel builds what every service has
alike (the broker and its two connections, Redis when asked for, the metrics registry, the
dependency gate, readiness and health, bundlers and HTTP client sessions) and owns the
lifecycle: connect (retrying while RabbitMQ is away), declare, consume, report ready, and on
SIGTERM stop consuming, let handlers finish, flush what is being published, close.

``cli.py`` picks a declaration by name and calls ``run``; tests call ``create_app`` to get the
same applications against their own broker vhost and Redis prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from hiker.core import runtime
from hiker.core.broker import Broker
from hiker.core.consumer import Routes
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.observability import (
    ReadinessCheck,
    add_ops_routes,
    configure_logging,
    new_registry,
)
from hiker.core.publisher import Bundler
from hiker.core.redis_store import RedisClient, connect_redis, ping
from hiker.core.retrying import keep_trying
from hiker.core.settings import CommonSettings, load_settings
from hiker.core.topology import QueueSpec, Topology

S = TypeVar("S", bound=CommonSettings)

# The operations application (metrics, health) of a service whose front is a public one.
OPS_APP = web.AppKey("ops_app", web.Application)
_PUBLIC_SITE = web.AppKey("public_site", runtime.Site)


@dataclass(frozen=True)
class Consume:
    """A queue a service consumes: each message's contract goes to its route's handler."""

    queue: QueueSpec
    routes: Routes
    prefetch: int


@dataclass(frozen=True)
class Serve:
    """The public HTTP application of a service (webhooks, the api) and where it listens."""

    app: web.Application
    host: str
    port: int


@dataclass
class Plan:
    """What a service is made of, as its ``build`` declares it."""

    # Declared on every (re)start; None for a service that does not use the broker.
    topology: Topology | None
    consumes: Sequence[Consume] = ()
    serves: Serve | None = None
    # Readiness checks beside the kernel's own (broker, Redis, dependency gate).
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Run once, in order, before the broker connects; each waits out its own dependency.
    prepare: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    # Run after the topology is declared and before consuming, on every (re)start.
    on_connect: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    # Loops that run for the service's life (reloading a file, sampling a gauge).
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    # Closed last, after consumers stopped and the broker closed (HTTP sessions, engines).
    closing: Sequence[Callable[[], Awaitable[None]]] = ()


class Kit(Generic[S]):
    """What the kernel hands a service's ``build``: the service's settings and the parts every
    service has. Everything taken from it is closed by the kernel, in order, at shutdown."""

    def __init__(
        self,
        service: Service[S],
        settings: S,
        *,
        broker: Broker | None,
        redis: RedisClient | None,
        registry: CollectorRegistry,
    ) -> None:
        self.service = service
        self.settings = settings
        self.registry = registry
        self._broker = broker
        self._redis = redis
        self._bundlers: list[Bundler] = []
        self._sessions: list[aiohttp.ClientSession] = []
        self._gate: DependencyGate | None = None

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = Broker.of_service(self.settings, f"hiker-{self.service.name}")
        return self._broker

    @property
    def redis(self) -> RedisClient:
        """The service's Redis client (built on first use; ``/readyz`` then pings it)."""
        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_target())
        return self._redis

    @property
    def gate(self) -> DependencyGate:
        """Where the consumers of the service share which dependency is failing."""
        if self._gate is None:
            self._gate = DependencyGate(DependencyMetrics(self.registry))
        return self._gate

    def bundler(self, linger_seconds: float | None = None) -> Bundler:
        """Publishes contracts through the broker, bundled per destination (``core.publisher``);
        ``linger_seconds`` defaults to the settings' ``HIKER_PUBLISH_LINGER_MS``."""
        if linger_seconds is None:
            linger_seconds = self.settings.publish_linger_ms / 1000
        bundler = Bundler(self.broker.publish, linger_seconds=linger_seconds)
        self._bundlers.append(bundler)
        return bundler

    def client_session(self, **options: Any) -> aiohttp.ClientSession:
        """An HTTP client session (made inside the running loop, closed at shutdown)."""
        session = aiohttp.ClientSession(**options)
        self._sessions.append(session)
        return session


@dataclass(frozen=True)
class Service(Generic[S]):
    """A service, declared: its name (logs, the broker's client name), its settings and how its
    parts are built from a ``Kit``. ``cli.py`` names each by its module."""

    name: str
    settings: type[S]
    build: Callable[[Kit[S]], Plan]


class Parts(TypedDict, total=False):
    """What a test may hand ``create_app`` instead of what the settings would build."""

    broker: Broker
    redis: RedisClient
    registry: CollectorRegistry


def create_app(service: Service[S], settings: S, **parts: Unpack[Parts]) -> web.Application:
    """``service`` as aiohttp applications, built now (call it inside the running loop).

    The returned application owns the lifecycle: starting it connects and consumes, cleaning it
    up stops and closes everything. It is the public application when the service serves one,
    its operations application (``/metrics``, ``/healthz``, ``/readyz``) then at
    ``app[OPS_APP]``; otherwise the operations application itself.
    """
    kit = Kit(
        service,
        settings,
        broker=parts.get("broker"),
        redis=parts.get("redis"),
        registry=parts.get("registry") or new_registry(),
    )
    plan = service.build(kit)
    if plan.topology is not None:
        _watch_blocking(kit)
    ops = web.Application()
    add_ops_routes(ops, kit.registry, _readiness(kit, plan))
    front = ops
    if plan.serves is not None:
        front = plan.serves.app
        front[OPS_APP] = ops
        front[_PUBLIC_SITE] = runtime.Site(front, plan.serves.host, plan.serves.port)
    front.cleanup_ctx.append(_lifecycle(kit, plan))
    return front


def _watch_blocking(kit: Kit[Any]) -> None:
    broker = kit.broker
    Gauge(
        "hiker_broker_blocked",
        "1 while RabbitMQ blocks this service's publishers (a memory or disk alarm): "
        "publishes fail at once, consumers hold their messages, /readyz says not ready.",
        registry=kit.registry,
    ).set_function(lambda: 1.0 if broker.is_blocked() else 0.0)


def _readiness(kit: Kit[Any], plan: Plan) -> dict[str, ReadinessCheck]:
    checks: dict[str, ReadinessCheck] = {}
    if plan.topology is not None:
        checks["rabbitmq"] = kit.broker.is_ready
    redis = kit._redis
    if redis is not None:
        checks["redis"] = lambda: ping(redis)
    checks.update(plan.readiness)
    if plan.consumes:
        checks["dependencies"] = kit.gate.is_ready
    return checks


def _lifecycle(
    kit: Kit[Any], plan: Plan
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(loop()) for loop in plan.background]
        if plan.topology is not None or plan.prepare:
            tasks.append(asyncio.create_task(_start(kit, plan)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _shut_down(kit, plan)

    return lifecycle


async def _start(kit: Kit[Any], plan: Plan) -> None:
    for prepare in plan.prepare:
        await prepare()
    topology = plan.topology
    if topology is None:
        return
    broker = kit.broker

    async def connect() -> None:
        await broker.connect(topology)
        for hook in plan.on_connect:
            await hook()
        for consume in plan.consumes:
            await broker.consume(
                consume.queue, consume.routes, prefetch=consume.prefetch, gate=kit.gate
            )
        broker.mark_serving()

    await keep_trying(connect, "RabbitMQ")


async def _shut_down(kit: Kit[Any], plan: Plan) -> None:
    """Stop taking work, let handlers in flight finish, send what is being published, close."""
    broker = kit._broker
    if broker is not None:
        await broker.stop_consuming()
    for bundler in kit._bundlers:
        await bundler.aclose()
    if broker is not None:
        await broker.close()
    for close in plan.closing:
        await close()
    for session in kit._sessions:
        await session.close()
    if kit._redis is not None:
        await kit._redis.aclose()


def run(service: Service[Any]) -> None:
    """Read the service's settings from the environment and serve it until SIGTERM/SIGINT."""
    settings = load_settings(service.settings)
    configure_logging(service.name, settings.log_level)
    runtime.run(_serve(service, settings))


async def _serve(service: Service[Any], settings: CommonSettings) -> None:
    front = create_app(service, settings)
    if OPS_APP not in front:
        await runtime.serve(runtime.Site(front, settings.metrics_host, settings.metrics_port))
        return
    # Operations first: health answers while the front's lifecycle connects; stopped last.
    await runtime.serve(
        runtime.Site(front[OPS_APP], settings.metrics_host, settings.metrics_port),
        front[_PUBLIC_SITE],
    )


def load(reference: str) -> Service[Any]:
    """The declaration ``module:attribute`` names (imported now, so that a service loads only
    its own code)."""
    module, _, attribute = reference.partition(":")
    service = getattr(importlib.import_module(module), attribute)
    if not isinstance(service, Service):
        raise TypeError(f"{reference} is not a Service")
    return service
