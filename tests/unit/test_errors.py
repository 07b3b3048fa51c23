"""What a failure means for the message in hand, for the replies a real Redis sends."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_exceptions
from redis._parsers.base import BaseParser

from hiker.core.claims import ClaimLost
from hiker.core.errors import BUSY, PublishFailed, RetryLater, Unavailable, classify
from hiker.core.redis_pipelining import ClusterTopologyUnavailable


def redis_reply(text: str) -> redis_exceptions.RedisError:
    """The exception redis-py raises for the error reply ``-<text>``."""
    error = BaseParser.parse_error(text)
    assert isinstance(error, redis_exceptions.RedisError)
    return error


@pytest.mark.parametrize(
    ("reply", "error_class"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM"),
        ("READONLY You can't write against a read only replica.", "READONLY"),
        ("NOAUTH Authentication required.", "NOAUTH"),
        ("WRONGPASS invalid username-password pair or user is disabled.", "WRONGPASS"),
        ("NOPERM this user has no permissions to run the 'evalsha' command", "NOPERM"),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         "MASTERDOWN"),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
         "BUSY"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "TRYAGAIN"),
        ("CLUSTERDOWN The cluster is down", "CLUSTERDOWN"),
        ("DENIED Redis is running in protected mode because protected mode is enabled", "DENIED"),
    ],
)  # fmt: skip
def test_redis_saying_not_now_is_the_dependency_away(reply: str, error_class: str) -> None:
    assert classify(redis_reply(reply)) == Unavailable("redis", error_class)


@pytest.mark.parametrize(
    "reply",
    [
        "ERR user_script:3: Script attempted to access nonexistent global variable 'x'",
        "ERR value is not an integer or out of range script: 6a1f, on @user_script:1.",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR wrong number of arguments for 'set' command",
    ],
)
def test_a_wrong_command_is_a_bug_not_an_outage(reply: str) -> None:
    assert classify(redis_reply(reply)) is None


def test_disconnects_and_the_broker_refusing_are_outages() -> None:
    assert classify(redis_exceptions.ConnectionError("Connection refused")) == Unavailable(
        "redis", "connection"
    )
    assert classify(redis_exceptions.TimeoutError("Timeout reading")) == Unavailable(
        "redis", "timeout"
    )
    assert classify(PublishFailed("nack")) == Unavailable("rabbitmq", "publish_failed")
    assert classify(
        redis_exceptions.ConnectionError("DENIED Redis is running in protected mode")
    ) == Unavailable("redis", "DENIED")


def test_a_claim_held_elsewhere_is_busy_and_anything_else_is_a_bug() -> None:
    assert classify(RetryLater("claim:wamid.1")) is BUSY
    assert classify(ValueError("a bug")) is None
    assert classify(KeyError("a bug")) is None


def test_a_cluster_moving_or_unmapped_is_an_outage() -> None:
    assert classify(redis_exceptions.SlotNotCoveredError("slot 42 not covered")) == Unavailable(
        "redis", "cluster"
    )
    assert classify(redis_exceptions.ClusterError("TTL exhausted.")) == Unavailable(
        "redis", "cluster"
    )
    assert classify(ClusterTopologyUnavailable("Redis Cluster cannot be connected")) == (
        Unavailable("redis", "connection")
    )


def test_keys_of_two_slots_in_one_command_are_a_bug() -> None:
    assert classify(redis_reply("CROSSSLOT Keys in request don't hash to the same slot")) is None
    assert classify(redis_exceptions.RedisClusterException("all keys must map to one slot")) is None


def test_a_lost_claim_is_busy_not_a_bug() -> None:
    assert classify(ClaimLost("hiker:sent:{100}:reply:wamid.1")) is BUSY
