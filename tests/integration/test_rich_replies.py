"""Rich replies end to end: buttons, lists, media, reactions, read receipts; the order of a reply
of several actions across a Graph 5xx and a killed sender; each request valid for Meta."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hiker.tools.simulate import (
    button_reply_message,
    image_message,
    messages_change,
    webhook_body,
)
from tests.integration.conftest import (
    Pipeline,
    PipelineFactory,
    ServiceProcess,
    metric_value,
)

pytestmark = pytest.mark.integration

RULES = """\
rules:
  - {name: menu, match: exact, pattern: menu,
     reply: {buttons: {body: "What would you like?", options: [{id: sizes, title: Sizes}, {id: hours, title: Hours}]}}}
  - {name: sizes, match: button, pattern: sizes, reply: "S, M, L"}
  - {name: photo, match: exact, pattern: photo, reply: {image: {link: "https://example.com/a.jpg", caption: "A"}}}
  - {name: docs, match: exact, pattern: docs,
     reply: [{text: "Here is the price list"}, {document: {link: "https://example.com/p.pdf", filename: "p.pdf"}}]}
  - {name: catalog, match: exact, pattern: catalog,
     reply: {list: {body: "Pick one", button: "Items", sections: [{title: Fruit, rows: [{id: apple, title: Apple, description: Red}]}]}}}
  - {name: pics, match: type, pattern: image, reply: {reaction: {emoji: "👍"}}}
  - {name: story, match: exact, pattern: story,
     reply: [{text: one}, {image: {link: "https://example.com/two.jpg", caption: two}}, {text: three}]}
"""  # noqa: E501 - docs/replies.md's rules, one per line

META = Path(
    os.environ.get("HIKER_TEST_META_SCHEMAS")
    or Path(__file__).resolve().parents[3] / "shared" / "meta"
)


def meta_schema() -> jsonschema.Draft202012Validator | None:
    path = META / "message.schema.json"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Meta's schemas missing at {META}")
        return None
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


async def rich_pipeline(make_pipeline: PipelineFactory, tmp_path: Path, **env: str) -> Pipeline:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return await make_pipeline(HIKER_RULES_FILE=str(rules), HIKER_IDLE_TIMEOUT_SECONDS="120", **env)


async def sent_of(pipeline: Pipeline, user: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` messages Graph accepted for ``user``, in the order it accepted them."""
    await pipeline.wait_for_texts(user, count)
    return sorted(await pipeline.sent(user), key=lambda m: m["accepted_at"])[:count]


async def test_every_kind_of_reply_reaches_graph_as_meta_describes_it(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    pipeline = await rich_pipeline(make_pipeline, tmp_path)
    users = {name: f"1555030{n:04d}" for n, name in enumerate(["menu", "photo", "docs", "cat"])}
    await pipeline.say(users["menu"], "Menu")
    await pipeline.say(users["photo"], "photo")
    await pipeline.say(users["docs"], "docs")
    await pipeline.say(users["cat"], "catalog")
    pics = image_message("15550309999")
    assert await pipeline.post(webhook_body(messages_change([pics]))) == 200

    [menu] = await sent_of(pipeline, users["menu"], 1)
    interactive = menu["payload"]["interactive"]
    assert interactive["type"] == "button"
    assert [b["reply"]["id"] for b in interactive["action"]["buttons"]] == ["sizes", "hours"]
    tap = button_reply_message(users["menu"], "sizes", "Sizes")
    assert await pipeline.post(webhook_body(messages_change([tap]))) == 200
    assert await pipeline.wait_for_texts(users["menu"], 2) == ["What would you like?", "S, M, L"]

    [photo] = await sent_of(pipeline, users["photo"], 1)
    assert photo["payload"]["image"] == {"link": "https://example.com/a.jpg", "caption": "A"}
    docs = await sent_of(pipeline, users["docs"], 2)
    assert [m["type"] for m in docs] == ["text", "document"]  # in the rule's order
    assert docs[1]["payload"]["document"]["filename"] == "p.pdf"
    [listed] = await sent_of(pipeline, users["cat"], 1)
    assert listed["payload"]["interactive"]["action"]["sections"][0]["rows"][0]["id"] == "apple"
    [reaction] = await sent_of(pipeline, "15550309999", 1)
    assert reaction["payload"]["reaction"] == {"message_id": pics["id"], "emoji": "👍"}

    schema = meta_schema()
    if schema is not None:
        for message in [menu, photo, *docs, listed, reaction]:
            # Every send carries its key back from Meta's statuses; Meta's v23 schema predates
            # ``biz_opaque_callback_data`` (its messages reference has it): the rest is checked.
            payload = dict(message["payload"])
            assert payload.pop("biz_opaque_callback_data").startswith("reply:")
            assert list(schema.iter_errors(payload)) == [], message["payload"]


async def test_read_receipts_with_typing_go_before_the_reply(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    pipeline = await rich_pipeline(make_pipeline, tmp_path, HIKER_READ_RECEIPTS="typing")
    user = "15550310001"
    wamid = await pipeline.say(user, "docs")
    docs = await sent_of(pipeline, user, 2)
    async with pipeline.session.get(pipeline.url("graph", "/_mock/receipts")) as response:
        receipts = await response.json()
    [receipt] = [r for r in receipts if r["message_id"] == wamid]
    assert receipt["typing"] is True
    assert receipt["accepted_at"] <= docs[0]["accepted_at"]
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_read_receipts_total", outcome="sent") == 1


async def test_a_reply_keeps_its_order_across_a_graph_5xx_and_a_killed_sender(
    make_pipeline: PipelineFactory,
    tmp_path: Path,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    pipeline = await make_pipeline(
        services=("graph", "ingress", "conversation"),
        HIKER_RULES_FILE=str(rules),
        HIKER_IDLE_TIMEOUT_SECONDS="120",
    )
    user = "15550310002"
    # "one" is accepted; the photo meets a 503 and waits in a retry queue for its next attempt.
    await pipeline.script_faults(user, {"status": 200}, {"status": 503, "code": 2})
    sender = spawn("sender", pipeline.env)
    await sender.start()
    await pipeline.say(user, "story")
    assert await pipeline.wait_for_texts(user, 1) == ["one"]

    async def the_5xx_was_played() -> bool:
        async with pipeline.session.get(f"http://127.0.0.1:{sender.port}/metrics") as response:
            metrics = await response.text()
        return metric_value(metrics, "hiker_send_retries_total", code="2") >= 1

    deadline = time.monotonic() + 15
    while not await the_5xx_was_played():
        assert time.monotonic() < deadline, "the photo was never tried"
        await asyncio.sleep(0.05)
    await sender.kill()  # while what is left of the reply waits for its retry
    restarted = spawn("sender", pipeline.env)
    await restarted.start()
    texts = await pipeline.wait_for_texts(user, 3, within=30)
    assert texts == ["one", "two", "three"]  # the photo before what follows it, each once
    await asyncio.sleep(1.0)
    assert await pipeline.texts(user) == ["one", "two", "three"]
