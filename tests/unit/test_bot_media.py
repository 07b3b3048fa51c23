"""A bot opens what the user sent: ``msg.<kind>.download()`` and ``.save(path)``, in the harness
(no network), and the clear errors it gets when it cannot."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hiker.bot import Bot, Conversation, Media, MediaError, MediaUnavailable, Message, Text, filters
from hiker.testing import BotHarness


def opener(folder: Path | None = None) -> Bot:
    bot = Bot()

    @bot.on_message(filters.image | filters.video | filters.audio | filters.document)
    async def open_it(msg: Message, conv: Conversation) -> Any:
        assert msg.media is not None
        try:
            data = await msg.media.download()
        except MediaError as exc:
            return Text(body=f"cannot open it: {exc}")
        conv.state["digest"] = hashlib.sha256(data).hexdigest()
        return Text(body=f"{msg.kind} of {len(data)} bytes")

    @bot.on_message(filters.sticker)
    async def keep(msg: Message, conv: Conversation) -> Any:
        assert msg.sticker is not None
        assert folder is not None
        path = await msg.sticker.save(folder / "sticker.webp")
        return Text(body=f"saved {path.name}")

    return bot


async def test_every_kind_of_medium_downloads_the_bytes_the_user_sent() -> None:
    async with BotHarness(opener()) as chat:
        assert await chat.send_image(b"a photo", caption="invoice 7") == [
            Text(body="image of 7 bytes")
        ]
        assert chat.state["digest"] == hashlib.sha256(b"a photo").hexdigest()
        assert await chat.send_video(b"a film") == [Text(body="video of 6 bytes")]
        assert await chat.send_voice(b"hello?") == [Text(body="audio of 6 bytes")]
        assert await chat.send_document(b"%PDF-1.7 x") == [Text(body="document of 10 bytes")]
        # Kept once, by digest, in the harness's in-memory store.
        assert await chat.media.store.get(hashlib.sha256(b"a film").hexdigest()) == b"a film"


async def test_save_writes_the_medium_to_a_file(tmp_path: Path) -> None:
    async with BotHarness(opener(tmp_path)) as chat:
        assert await chat.send_sticker(b"RIFF webp") == [Text(body="saved sticker.webp")]
    assert (tmp_path / "sticker.webp").read_bytes() == b"RIFF webp"


async def test_an_expired_medium_raises_a_clear_error_in_the_bot() -> None:
    async with BotHarness(opener()) as chat:
        chat.media.available = False
        [answer] = await chat.send_image(b"old photo")
    assert isinstance(answer, Text)
    assert answer.body.startswith("cannot open it: media ")
    assert answer.body.endswith("Graph no longer has it (expired)")


async def test_a_medium_over_the_limit_raises_a_clear_error_in_the_bot() -> None:
    async with BotHarness(opener()) as chat:
        chat.media.max_bytes = 4
        [answer] = await chat.send_document(b"%PDF too long")
    assert isinstance(answer, Text)
    assert "has 13 bytes, over HIKER_MEDIA_MAX_BYTES (4)" in answer.body


async def test_a_view_without_a_media_source_says_where_download_works() -> None:
    with pytest.raises(MediaUnavailable, match="no media source"):
        await Media(kind="image", id="1").download()
