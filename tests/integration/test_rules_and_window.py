"""Rules from a file (reloaded without restart), per-number follow-ups, and the 24-hour window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest

from hiker.conversation.timers import SERVICE_WINDOW_SECONDS
from hiker.tools.simulate import (
    DEFAULT_PHONE_NUMBER_ID,
    messages_change,
    text_message,
    webhook_body,
)
from tests.integration.conftest import Pipeline, PipelineFactory, metric_value
from tests.support import wait_for_metric

pytestmark = pytest.mark.integration


async def test_rules_file_replies_and_reloads_without_restart(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: ping, match: exact, pattern: ping, reply: pong}\n")
    pipeline = await make_pipeline(
        HIKER_RULES_FILE=str(rules),
        HIKER_RULES_RELOAD_SECONDS="0.2",
        HIKER_IDLE_TIMEOUT_SECONDS="60",
    )
    user = "15550000020"

    def conversation() -> Awaitable[str]:
        return pipeline.metrics("conversation")

    await pipeline.say(user, "PING")
    assert await pipeline.wait_for_texts(user, 1) == ["pong"]
    rules.write_text("rules:\n  - {name: ping, match: exact, pattern: ping, reply: pong again}\n")
    await wait_for_metric(conversation, "hiker_rules_reloads_total", 1, outcome="applied")
    await pipeline.say(user, "ping")
    assert await pipeline.wait_for_texts(user, 2) == ["pong", "pong again"]
    rules.write_text("rules:\n  - {name: ping, match: sometimes}\n")  # a bad edit is refused
    await wait_for_metric(conversation, "hiker_rules_reloads_total", 1, outcome="rejected")
    await pipeline.say(user, "ping")
    assert await pipeline.wait_for_texts(user, 3) == ["pong", "pong again", "pong again"]
    page = await conversation()
    assert metric_value(page, "hiker_rules_reloads_total", outcome="applied") == 1
    assert metric_value(page, "hiker_rules_reloads_total", outcome="rejected") == 1


async def test_followup_text_and_timeout_per_phone_number(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "followup: {text: are you there, idle_timeout_seconds: 60}\n"
        f"numbers:\n  '{DEFAULT_PHONE_NUMBER_ID}':\n"
        "    followup: {text: 'still with us?', idle_timeout_seconds: 1}\n"
    )
    pipeline = await make_pipeline(HIKER_RULES_FILE=str(rules))
    user = "15550000021"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 2, within=10) == [
        "hello to you too",
        "still with us?",
    ]


# The late message's window stays open this long (less a second: timestamps are whole seconds),
# time for its reply under a loaded machine; the idle timer fires only after it closes.
_WINDOW_LEFT_SECONDS = 5
_IDLE_AFTER_WINDOW_SECONDS = "7"


def _late_message(user: str) -> dict[str, object]:
    # Sent by the user almost a day ago: the window closes before the idle timer fires.
    sent = int(time.time()) - SERVICE_WINDOW_SECONDS + _WINDOW_LEFT_SECONDS
    return webhook_body(messages_change([text_message(user, "hello", timestamp=sent)]))


async def test_followup_outside_the_window_is_skipped_without_a_template(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS=_IDLE_AFTER_WINDOW_SECONDS)
    user = "15550000022"
    assert await pipeline.post(_late_message(user)) == 200
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    assert await _followups_skipped(pipeline, within=15) == 1
    assert await pipeline.texts(user) == ["hello to you too"]  # never sent to fail with 131047


async def _followups_skipped(pipeline: Pipeline, within: float) -> float:
    """How many follow-ups were skipped for a closed window, once there is one (or time is up)."""
    deadline = time.monotonic() + within
    while True:
        conversation = await pipeline.metrics("conversation")
        skipped = metric_value(
            conversation, "hiker_sends_skipped_total", kind="followup", reason="window_closed"
        )
        if skipped or time.monotonic() > deadline:
            return skipped
        await asyncio.sleep(0.2)


async def test_followup_outside_the_window_uses_the_configured_template(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"followup:\n  idle_timeout_seconds: {_IDLE_AFTER_WINDOW_SECONDS}\n"
        "  template: {name: we_miss_you, language: en_US}\n"
    )
    pipeline = await make_pipeline(HIKER_RULES_FILE=str(rules))
    user = "15550000023"
    assert await pipeline.post(_late_message(user)) == 200
    assert await pipeline.wait_for_texts(user, 2, within=20) == [
        "hello to you too",
        "[template we_miss_you en_US]",
    ]
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_followups_emitted_total", form="template") == 1
