"""Queue arguments that depend on the broker's version."""

from __future__ import annotations

import pytest

from hiker.core import topology


@pytest.mark.parametrize(
    ("text", "version"),
    [("3.10.8", (3, 10)), ("4.1.0", (4, 1)), ("4.2.0-rc.1", (4, 2)), ("", (0, 0)), ("x", (0, 0))],
)
def test_server_version_is_read_from_the_handshake_string(
    text: str, version: tuple[int, int]
) -> None:
    assert topology.server_version(text) == version


def test_queues_held_for_people_have_no_delivery_limit_on_rabbitmq_4() -> None:
    for spec in (topology.SENDER_PARKED, topology.POISON, topology.INSPECT):
        on_4 = topology.for_server(spec, (4, 0))
        assert on_4.arguments["x-delivery-limit"] == -1
        assert {k: v for k, v in on_4.arguments.items() if k != "x-delivery-limit"} == dict(
            spec.arguments
        )


def test_rabbitmq_3_gets_no_limit_argument_there() -> None:
    # 3.x has no default limit, and would read -1 as "drop at the first return".
    for spec in (topology.SENDER_PARKED, topology.POISON, topology.INSPECT):
        assert "x-delivery-limit" not in topology.for_server(spec, (3, 13)).arguments


def test_consumed_queues_keep_their_explicit_limit_everywhere() -> None:
    for version in ((3, 10), (4, 2)):
        spec = topology.for_server(topology.SENDER_OUTBOX, version)
        assert spec.arguments["x-delivery-limit"] == topology.DELIVERY_LIMIT


def test_a_configured_group_size_goes_on_every_quorum_queue_only() -> None:
    for spec in (topology.CONVERSATION_INBOUND, topology.POISON, topology.timer_wait_queue(600)):
        for version in ((3, 10), (4, 1)):
            declared = topology.for_server(spec, version, quorum_group_size=3)
            assert declared.arguments["x-quorum-initial-group-size"] == 3
            plain = topology.for_server(spec, version)
            assert "x-quorum-initial-group-size" not in plain.arguments
    classic = topology.QueueSpec("classic", {"x-max-length": 1})
    assert topology.for_server(classic, (4, 1), quorum_group_size=3) is classic
