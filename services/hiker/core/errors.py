"""What a failure means for the message in hand: hold it, retry it, or poison it.

Handlers raise; the consumer (``core.consumer``) asks ``classify`` what the error says. A
dependency in trouble (RabbitMQ or Redis away, or answering "not now") is never the message's
fault: the message is held and retried once the dependency answers again, and never counts
towards the poison limit; the database (``hiker api``'s records) is such a dependency too.
Poison is for messages that can never be processed, and for bugs.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Final

import aiormq
from redis import exceptions as redis_exceptions

if TYPE_CHECKING:
    from sqlalchemy import exc as sqlalchemy_exceptions

REDIS: Final = "redis"
RABBITMQ: Final = "rabbitmq"
DATABASE: Final = "database"


class PublishFailed(Exception):
    """The broker did not confirm a message; the caller still owns it."""


class Reject(Exception):
    """The message can never be processed (bad payload): dead-letter it, do not retry."""


class RetryLater(Exception):
    """Someone else holds the work for now (a live claim); try the same message again shortly."""


class DatabaseUnavailable(Exception):
    """The database could not be reached where its client says nothing of its own (a refused or
    timed-out socket while connecting); ``error_class`` as in ``Unavailable``."""

    def __init__(self, error_class: str) -> None:
        super().__init__(f"database unavailable ({error_class})")
        self.error_class = error_class


@dataclass(frozen=True)
class Unavailable:
    """A dependency is failing: hold the message until it answers again.

    ``error_class`` is a short, stable label for metrics and alerts (``READONLY``,
    ``connection``...), never the error's text, which may carry a host name or a key.
    """

    dependency: str
    error_class: str


@dataclass(frozen=True)
class Busy:
    """The work is held elsewhere for now (a live claim): retry the message after a pause."""


BUSY: Final = Busy()

# Redis server errors that say "not now" rather than "this command is wrong": memory full,
# a replica or a failover in progress, credentials rotated, a dataset loading, a long script,
# a cluster resharding, or a server in protected mode refusing this client. By reply prefix,
# since redis-py maps only some of them to classes of their own.
_REDIS_NOT_NOW: Final = frozenset(
    {
        "OOM",
        "READONLY",
        "NOAUTH",
        "WRONGPASS",
        "NOPERM",
        "MASTERDOWN",
        "LOADING",
        "BUSY",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "DENIED",
    }
)

_AMQP_UNAVAILABLE: Final = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed,
)


def classify(exc: BaseException) -> Unavailable | Busy | None:
    """``Unavailable`` (hold, the dependency's fault), ``BUSY`` (retry soon), or None (a bug or
    a bad message: the message's own fault)."""
    if isinstance(exc, RetryLater):
        return BUSY
    if isinstance(exc, PublishFailed):
        return Unavailable(RABBITMQ, "publish_failed")
    if isinstance(exc, redis_exceptions.RedisError):
        return _classify_redis(exc)
    if isinstance(exc, redis_exceptions.SlotNotCoveredError):
        # A Redis Cluster with a slot nobody serves for now (a failover, a reshard).
        return Unavailable(REDIS, "cluster")
    if isinstance(exc, DatabaseUnavailable):
        return Unavailable(DATABASE, exc.error_class)
    database_errors = _sqlalchemy_exceptions()
    if database_errors is not None and isinstance(exc, database_errors.SQLAlchemyError):
        return _classify_database(exc)
    if isinstance(exc, _AMQP_UNAVAILABLE):
        return Unavailable(RABBITMQ, "connection")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        # Raised by the clients' sockets before either library wrapped them.
        return Unavailable("network", type(exc).__name__)
    return None


def _classify_redis(exc: redis_exceptions.RedisError) -> Unavailable | None:
    prefix = _reply_prefix(exc)
    if prefix in _REDIS_NOT_NOW:
        return Unavailable(REDIS, prefix)
    if isinstance(exc, redis_exceptions.ResponseError):
        # Script errors, WRONGTYPE, syntax: Redis is fine, the command is not.
        return None
    if isinstance(exc, redis_exceptions.AuthenticationError):
        return Unavailable(REDIS, "auth")
    if isinstance(exc, redis_exceptions.TimeoutError):
        return Unavailable(REDIS, "timeout")
    if isinstance(exc, redis_exceptions.ClusterError):
        # Redirected until the client gave up: slots are moving between nodes.
        return Unavailable(REDIS, "cluster")
    if isinstance(exc, redis_exceptions.ConnectionError):
        # A server in protected mode answers "-DENIED ..." and closes while we connect.
        return Unavailable(REDIS, "DENIED" if "DENIED" in str(exc) else "connection")
    return None


# PostgreSQL error classes (SQLSTATE's first two characters) that say "not now": the connection
# failed, the server is short of resources (too many connections, disk full), or an operator
# intervened (shutdown, restart, a terminated backend); and a login refused (a password rotated).
_POSTGRES_NOT_NOW_CLASSES: Final = {
    "08": "connection",
    "53": "resources",
    "57": "shutdown",
    "28": "auth",
}
# Conflicts between transactions: the same work succeeds when retried.
_POSTGRES_RETRY_STATES: Final = frozenset({"40001", "40P01"})
# SQLite's messages for a database file that is busy, missing, full or read-only (its error
# class is the same for a missing table, which is a bug, so the text decides).
_SQLITE_NOT_NOW: Final = (
    ("database is locked", "locked"),
    ("unable to open database file", "unreachable"),
    ("disk i/o error", "io"),
    ("database or disk is full", "full"),
    ("readonly database", "readonly"),
)


def _sqlalchemy_exceptions() -> ModuleType | None:
    """SQLAlchemy's exceptions, once something imported SQLAlchemy (only ``hiker api`` does):
    before that no error can be one of them, and the other services skip its import."""
    return sys.modules.get("sqlalchemy.exc")


def _classify_database(exc: sqlalchemy_exceptions.SQLAlchemyError) -> Unavailable | Busy | None:
    from sqlalchemy import exc as sqlalchemy_exceptions  # imported already: see the caller

    if isinstance(exc, sqlalchemy_exceptions.TimeoutError):  # no pooled connection came free
        return Unavailable(DATABASE, "pool_timeout")
    if isinstance(exc, sqlalchemy_exceptions.DisconnectionError):
        return Unavailable(DATABASE, "connection")
    if not isinstance(exc, sqlalchemy_exceptions.DBAPIError):
        return None
    if exc.connection_invalidated:
        return Unavailable(DATABASE, "connection")
    if exc.statement is None:
        # Raised while connecting, before any statement: whatever the server said (a database
        # not accepting connections, too many clients), the message has nothing to do with it.
        return Unavailable(DATABASE, "connect")
    original = exc.orig
    state = getattr(original, "sqlstate", None)
    if isinstance(state, str) and state:
        if state in _POSTGRES_RETRY_STATES:
            return BUSY
        if state == "3D000":  # the database itself is not there (dropped, not yet created)
            return Unavailable(DATABASE, "no_database")
        label = _POSTGRES_NOT_NOW_CLASSES.get(state[:2])
        return Unavailable(DATABASE, label) if label else None
    if isinstance(original, sqlite3.OperationalError):
        text = str(original).lower()
        for fragment, label in _SQLITE_NOT_NOW:
            if fragment in text:
                return Unavailable(DATABASE, label)
    return None


def _reply_prefix(exc: redis_exceptions.RedisError) -> str:
    # redis-py strips the prefix of the errors it maps to a class and keeps it as status_code;
    # the others (BUSY, DENIED, WRONGTYPE...) keep it as the first word of their text.
    if exc.status_code:
        return exc.status_code
    text = str(exc)
    return text.split(" ", 1)[0] if text else ""
