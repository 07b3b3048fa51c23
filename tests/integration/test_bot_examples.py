"""The SDK's examples in the pipeline, against the real broker and Redis: what the harness
showed (tests/unit/test_example_*.py) holds with ingress, conversation, sender and Graph."""

from __future__ import annotations

import asyncio

import pytest

from hiker.tools.simulate import (
    button_reply_message,
    image_message,
    messages_change,
    webhook_body,
)
from tests.integration.conftest import Pipeline, PipelineFactory, metric_value

pytestmark = pytest.mark.integration

SHOP = {
    "HIKER_BOT": "hiker.examples.shop:bot",
    "HIKER_IDLE_TIMEOUT_SECONDS": "600",
    "HIKER_USER_SEND_INTERVAL_SECONDS": "0",
}


async def tap(pipeline: Pipeline, user: str, button_id: str, title: str) -> None:
    body = webhook_body(messages_change([button_reply_message(user, button_id, title)]))
    assert await pipeline.post(body) == 200


async def test_the_shop_keeps_a_cart_across_messages_and_recalls_it(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hiker.examples import shop

    monkeypatch.setattr(shop, "CART_REMINDER_SECONDS", 2)
    pipeline = await make_pipeline(**SHOP)
    user = "15550500001"
    await pipeline.say(user, "menu")
    assert await pipeline.wait_for_texts(user, 1) == ["Welcome to the shop. What would you like?"]
    await tap(pipeline, user, "browse", "Browse")
    assert (await pipeline.wait_for_texts(user, 2))[-1] == "Our products"
    await tap(pipeline, user, "mug", "Mug")
    assert (await pipeline.wait_for_texts(user, 4))[2:] == ["Mug, 9 EUR", "Shall I add it?"]
    await tap(pipeline, user, "add:mug", "Add to cart")
    texts = await pipeline.wait_for_texts(user, 5)
    assert texts[-1] == "Added: Mug. Cart: 1 item, 9 EUR."  # the cart survived in Redis
    recalled = await pipeline.wait_for_texts(user, 6, within=20)
    assert recalled[-1] == "You left something in your cart. Cart: 1 item, 9 EUR."
    await asyncio.sleep(1.0)
    assert len(await pipeline.texts(user)) == 6  # once
    handled = await pipeline.metrics("conversation")
    assert metric_value(handled, "hiker_replies_emitted_total", rule="add") == 1


async def test_the_shop_answers_a_photo_and_leaves_the_rest_to_the_rules(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(**SHOP)
    user = "15550500002"
    photo = image_message(user, caption="like this?")
    assert await pipeline.post(webhook_body(messages_change([photo]))) == 200
    texts = await pipeline.wait_for_texts(user, 2)
    assert texts == [f"[reaction 👍 to {photo['id']}]", "Nice photo! Have a look at ours:"]
    await pipeline.say(user, "hello")
    assert (await pipeline.wait_for_texts(user, 3))[-1] == "hello to you too"
