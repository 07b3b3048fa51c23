"""The AI responder against the real broker and Redis, conversation running: what no rule takes
goes to the model, a burst gets one call and one reply, a slow model holds up nobody else, a
crash answers once, failures are retried or handed to a person, and budgets hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from hiker.conversation.rules import AI_UNAVAILABLE_TEXT
from hiker.core import topology
from hiker.core.ai_model import Completion, ModelUnavailable, ToolCall
from tests.integration.ai_support import (
    ConversationChild,
    ModelServer,
    ScriptedModel,
    start_conversation,
)
from tests.integration.conftest import Pipeline, PipelineFactory, metric_value, queue_depth

pytestmark = pytest.mark.integration

WITHOUT_CONVERSATION = ("graph", "ingress", "sender")


async def receipts(pipeline: Pipeline) -> list[dict[str, object]]:
    async with pipeline.session.get(pipeline.url("graph", "/_mock/receipts")) as response:
        result: list[dict[str, object]] = await response.json()
        return result


async def test_the_model_gets_the_history_in_order_and_answers_after_typing(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    model = ScriptedModel()
    await start_conversation(pipeline, model)
    user = "15550700001"
    await pipeline.say(user, "hello")  # the rules answer this one
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    asked = await pipeline.say(user, "what do you sell?")
    assert await pipeline.wait_for_texts(user, 2) == [
        "hello to you too",
        "model: what do you sell?",
    ]
    [request] = model.requests
    assert request[0] == {"role": "system", "content": "You are the shop's assistant."}
    assert [(m["role"], m["content"]) for m in request[1:]] == [
        ("user", "hello"),
        ("assistant", "hello to you too"),
        ("user", "what do you sell?"),
    ]
    seen = await receipts(pipeline)
    assert any(r["message_id"] == asked and r["typing"] for r in seen), (asked, seen)
    # The answer is in the history the next turn is told.
    await pipeline.say(user, "and the prices?")
    await pipeline.wait_for_texts(user, 3)
    assert [m["content"] for m in model.requests[1][1:]] == [
        "hello",
        "hello to you too",
        "what do you sell?",
        "model: what do you sell?",
        "and the prices?",
    ]
    metrics = await pipeline.metrics("conversation")
    assert metric_value(metrics, "hiker_ai_requests_total", outcome="ok") == 2
    assert metric_value(metrics, "hiker_ai_tokens_total", kind="prompt") == 20


async def test_three_messages_in_a_burst_get_one_call_and_one_reply(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    model = ScriptedModel()
    await start_conversation(pipeline, model, HIKER_AI_DEBOUNCE_MS="3000")
    user = "15550700002"
    for text in ("hi", "do you deliver", "to Lisbon?"):
        await pipeline.say(user, text)
    assert await pipeline.wait_for_texts(user, 1) == ["model: to Lisbon?"]
    [request] = model.requests
    assert [m["content"] for m in request if m["role"] == "user"] == [
        "hi",
        "do you deliver",
        "to Lisbon?",
    ]
    metrics = await pipeline.metrics("conversation")
    assert metric_value(metrics, "hiker_ai_debounced_messages_total") == 2
    await asyncio.sleep(1.0)  # nothing more comes of the two superseded turns
    assert await pipeline.texts(user) == ["model: to Lisbon?"]
    assert len(model.requests) == 1


async def test_a_slow_model_does_not_hold_up_a_rules_reply_to_another_user(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    release = asyncio.Event()
    model = ScriptedModel(script={"slow question": [release]})
    await start_conversation(pipeline, model)
    waiting, other = "15550700003", "15550700004"
    await pipeline.say(waiting, "slow question")
    await asyncio.wait_for(model.entered.wait(), 15)
    await pipeline.say(other, "hello")
    assert await pipeline.wait_for_texts(other, 1) == ["hello to you too"]
    assert not release.is_set()
    assert await pipeline.texts(waiting) == []
    release.set()
    assert await pipeline.wait_for_texts(waiting, 1) == ["model: slow question"]


async def test_rate_limits_and_server_errors_are_retried_then_served(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    model = ScriptedModel(
        script={
            "anyone?": [
                ModelUnavailable("429", outcome="rate_limited", retry_after=1.0),
                ModelUnavailable("503", outcome="server_error"),
            ]
        }
    )
    await start_conversation(pipeline, model)
    user = "15550700005"
    await pipeline.say(user, "anyone?")
    assert await pipeline.wait_for_texts(user, 1, within=30) == ["model: anyone?"]
    assert model.calls_about("anyone?") == 3
    metrics = await pipeline.metrics("conversation")
    for outcome in ("rate_limited", "server_error", "ok"):
        assert metric_value(metrics, "hiker_ai_requests_total", outcome=outcome) == 1
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0


async def test_past_give_up_the_user_is_told_and_the_bot_falls_silent_for_them(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    down = [ModelUnavailable("503", outcome="server_error") for _ in range(20)]
    model = ScriptedModel(script={"help me": down})
    await start_conversation(pipeline, model, HIKER_AI_GIVE_UP_SECONDS="1")
    user, other = "15550700006", "15550700007"
    await pipeline.say(user, "help me")
    assert await pipeline.wait_for_texts(user, 1, within=30) == [AI_UNAVAILABLE_TEXT]
    calls = len(model.requests)
    assert calls >= 2  # retried before giving up
    # Handed to a person: neither the rules nor the model answer this user now...
    await pipeline.say(user, "hello")
    await pipeline.say(user, "help me please")
    # ...while another user is answered as before (and that answer comes after the two above).
    await pipeline.say(other, "hello")
    assert await pipeline.wait_for_texts(other, 1) == ["hello to you too"]
    await asyncio.sleep(1.0)
    assert await pipeline.texts(user) == [AI_UNAVAILABLE_TEXT]
    assert len(model.requests) == calls


async def test_over_budget_sends_the_configured_reply_without_calling_the_model(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("ai_over_budget: That is all I can answer today.\n")
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    model = ScriptedModel()
    await start_conversation(
        pipeline, model, HIKER_RULES_FILE=str(rules), HIKER_AI_MAX_TOKENS_PER_USER_DAY="15"
    )
    user, other = "15550700008", "15550700009"
    await pipeline.say(user, "first question")
    assert await pipeline.wait_for_texts(user, 1) == ["model: first question"]
    await pipeline.say(user, "second question")
    assert await pipeline.wait_for_texts(user, 2) == [
        "model: first question",
        "That is all I can answer today.",
    ]
    assert len(model.requests) == 1
    await pipeline.say(other, "my question")  # another user's budget is their own
    assert await pipeline.wait_for_texts(other, 1) == ["model: my question"]
    metrics = await pipeline.metrics("conversation")
    assert metric_value(metrics, "hiker_ai_over_budget_total", budget="user") == 1


async def test_conversation_killed_during_the_model_call_answers_once(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    server = ModelServer()
    model = TestServer(server.app())
    await model.start_server()
    url = str(model.make_url("/complete"))
    # A short turn (2 s: one tool round and the answer) so that the dead worker's lease
    # (3 s) runs out soon; the model answers only once released.
    env = {**pipeline.env, "HIKER_AI_TIMEOUT_SECONDS": "0.7", "HIKER_IDLE_TIMEOUT_SECONDS": "600"}
    first = ConversationChild(env, url)
    second = ConversationChild(env, url)
    try:
        await first.start()
        user = "15550700010"
        await pipeline.say(user, "are you open today?")
        await asyncio.wait_for(server.entered.wait(), 15)
        await first.kill()  # mid-call: the turn is unacked, its claim leased
        server.blocking = False
        await second.start()
        assert await pipeline.wait_for_texts(user, 1, within=30) == ["model: are you open today?"]
        await asyncio.sleep(2.0)  # past another lease: nothing more comes
        assert await pipeline.texts(user) == ["model: are you open today?"]
        assert server.requests == ["are you open today?"] * 2
    finally:
        server.release.set()
        await first.stop()
        await second.stop()
        await model.close()


async def test_a_handoff_the_model_asks_for_silences_the_bot_for_that_user(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    handoff = ToolCall("call_1", "handoff", '{"reason": "asked for a person"}')
    model = ScriptedModel(script={"a person": [Completion(None, (handoff,)), "One moment."]})
    await start_conversation(pipeline, model)
    user, other = "15550700011", "15550700012"
    await pipeline.say(user, "I want a person")
    texts = await pipeline.wait_for_texts(user, 1)
    await pipeline.say(user, "hello")
    await pipeline.say(other, "hello")
    assert await pipeline.wait_for_texts(other, 1) == ["hello to you too"]
    await asyncio.sleep(1.0)
    assert await pipeline.texts(user) == texts  # nothing more: a person answers now


async def test_a_bad_send_buttons_goes_back_to_the_model_and_the_turn_ends_valid(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=WITHOUT_CONVERSATION)
    four = '{"body": "Pick one", "options": ["Small", "Medium", "Large", "Extra large"]}'
    three = '{"body": "Pick one", "options": ["Small", "Medium", "Large"]}'
    model = ScriptedModel(
        script={
            "choose": [
                Completion(None, (ToolCall("call_1", "send_buttons", four),)),
                Completion(None, (ToolCall("call_2", "send_buttons", three),)),
                "",
            ]
        }
    )
    # Rounds enough for a second try (the other tests keep to one).
    await start_conversation(pipeline, model, HIKER_AI_MAX_TOOL_ROUNDS="4")
    user = "15550700021"
    await pipeline.say(user, "let me choose a size")
    assert await pipeline.wait_for_texts(user, 1) == ["Pick one"]
    (sent,) = await pipeline.sent(user)
    buttons = sent["payload"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Small", "Medium", "Large"]
    # The model was told what was wrong with its first call, in the turn's second request.
    told = [m for m in model.requests[1] if m.get("role") == "tool"]
    assert told
    assert "error" in str(told[0]["content"]).lower()
