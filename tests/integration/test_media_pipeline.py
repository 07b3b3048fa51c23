"""A bot in the pipeline opens the photo a user sent: conversation resolves the media id
through Graph (the mock) with the number's token and keeps the bytes in HIKER_MEDIA_STORE."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hiker.bot import Bot, Conversation, MediaError, Message, Text, filters
from hiker.testing.inbound import sha256_of
from hiker.tools.simulate import image_message, messages_change, webhook_body
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory

pytestmark = pytest.mark.integration

bot = Bot()


@bot.on_message(filters.image)
async def weigh(msg: Message, conv: Conversation) -> Any:
    assert msg.image is not None
    try:
        data = await msg.image.download()
    except MediaError as exc:
        return Text(body=f"cannot open it: {type(exc).__name__}")
    return Text(body=f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}")


async def send_photo(pipeline: Pipeline, user: str, media_id: str, data: bytes) -> None:
    photo = image_message(user)
    photo["image"].update(id=media_id, sha256=sha256_of(data))
    body = webhook_body(messages_change([photo], phone_number_id=PHONE_NUMBER_ID))
    assert await pipeline.post(body) == 200


async def test_a_bot_downloads_a_photo_through_graph_into_the_media_store(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    pipeline = await make_pipeline(
        HIKER_BOT=f"{__name__}:bot",
        HIKER_MEDIA_STORE=(tmp_path / "media").as_uri(),
        HIKER_USER_SEND_INTERVAL_SECONDS="0",
    )
    photo = b"\xff\xd8\xff" + b"jpeg" * 500
    user = "15550600001"
    await send_photo(pipeline, user, await pipeline.upload_media(photo), photo)

    digest = hashlib.sha256(photo).hexdigest()
    assert await pipeline.wait_for_texts(user, 1) == [f"2003 bytes, sha256 {digest[:12]}"]
    assert (tmp_path / "media" / "sha256" / digest).read_bytes() == photo

    expired = await pipeline.upload_media(b"an old photo")
    async with pipeline.session.post(pipeline.url("graph", f"/_mock/media/{expired}/expire")):
        pass
    await send_photo(pipeline, user, expired, b"an old photo")
    assert (await pipeline.wait_for_texts(user, 2))[-1] == "cannot open it: MediaExpired"
