"""What the sender tells Meta to join a send's statuses by, and how a paused template parks."""

from __future__ import annotations

import pytest

from hiker.core.contracts import SendParked
from hiker.sender.retry import GraphOutcome
from tests.fakes import ScriptedGraph
from tests.unit.test_sender_handlers import COMMAND, REPLY_WITHOUT_RECEIPT, World


async def test_every_action_goes_out_with_its_own_key_as_callback_data() -> None:
    world = World()
    await world.handler.handle(REPLY_WITHOUT_RECEIPT, 1)
    assert world.graph.callback_data == ["k:1", "k:2"]
    # What is left of a reply (a retry, a replay) keeps each action's key: the one the
    # history records the send under (``MessageSent.idempotency_key``).
    rest = World()
    await rest.handler.handle(COMMAND.model_copy(update={"start": 2}), 1)
    assert rest.graph.callback_data == ["reply:wamid.IN1#2"]


@pytest.mark.parametrize(
    ("code", "reason"), [(132015, "template_paused"), (132016, "template_disabled")]
)
async def test_a_paused_or_disabled_template_is_parked_at_once_with_that_reason(
    code: int, reason: str
) -> None:
    error = {"code": code, "message": "Template is paused"}
    world = World(ScriptedGraph(GraphOutcome(400, error_code=code), error=error))
    await world.handler.handle(COMMAND, 1)
    assert len(world.graph.calls) == 1  # never retried: no retry un-pauses a template
    assert world.published.retries == []
    [(_, why)] = world.published.parked
    assert (why.reason, why.graph_code) == (reason, str(code))
    [told] = world.published.outcomes
    assert isinstance(told, SendParked)
    assert (told.reason, told.graph_code) == (reason, str(code))
    assert world.counted("hiker_messages_parked_total", code=str(code)) == 1
