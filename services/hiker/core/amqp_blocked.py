"""Whether RabbitMQ has blocked a connection's publishers (a memory or disk alarm).

During a resource alarm RabbitMQ stops reading from every connection that publishes and tells
it so with ``connection.blocked`` (``unblocked`` when the alarm clears). Frames written
meanwhile wait in the client's buffer and the kernel's, then land once the alarm clears: a
webhook answered 503 (its confirm timed out) would be published all the same, and Meta's
retry of it a second time. So a publisher must stop writing as soon as it is told, and say so
(not ready) instead of piling up frames.

aiormq follows the notification but exposes it only through ``Connection.ready()`` (which
waits); the flag itself is a name-mangled ``asyncio.Event`` of its ``Connection``. Reading that
event is the one cheap way to ask "blocked now?" on every publish; it is fenced here, and
``tests/unit/test_library_internals.py`` fails loudly when a new aiormq moves it.
"""

from __future__ import annotations

import asyncio

import aiormq
from aio_pika.abc import AbstractConnection

_UNBLOCKED_EVENT = "_Connection__connection_unblocked"


def unblocked_event(connection: aiormq.Connection) -> asyncio.Event:
    """aiormq's own flag: set while RabbitMQ reads this connection's publishes."""
    event = getattr(connection, _UNBLOCKED_EVENT, None)
    if not isinstance(event, asyncio.Event):
        raise RuntimeError(
            "aiormq.Connection no longer has the connection.blocked flag Hiker reads "
            f"({_UNBLOCKED_EVENT}); see hiker.core.amqp_blocked"
        )
    return event


def is_blocked(connection: AbstractConnection | None) -> bool:
    """Whether RabbitMQ told ``connection`` (aio-pika's) that its publishers are blocked."""
    if connection is None or connection.transport is None:
        return False
    underlay = connection.transport.connection
    assert isinstance(underlay, aiormq.Connection)
    return not unblocked_event(underlay).is_set()
