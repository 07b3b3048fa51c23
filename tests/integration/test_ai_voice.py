"""A voice note answered by the model in the pipeline: conversation downloads it through Graph
(the mock) with the number's token, the model (scripted) transcribes it and answers what was
said, and the answer reaches the user."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hiker.bot import Bot, Conversation, Message, filters
from hiker.conversation.ai.turn import TurnRunner
from hiker.testing import FakeModel
from hiker.testing.inbound import sha256_of
from hiker.tools.simulate import messages_change, new_wamid, webhook_body
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory

pytestmark = pytest.mark.integration

bot = Bot()


@bot.on_message(filters.audio)
async def listen(msg: Message, conv: Conversation) -> Any:
    return await bot.ai.answer(msg, conv)


async def test_a_voice_note_is_downloaded_transcribed_and_answered(
    make_pipeline: PipelineFactory,
) -> None:
    model = FakeModel("We open at 9, see you!", transcripts=["when do you open tomorrow"])
    bot.ai.attach(TurnRunner(model, transcribe=True), system_prompt="You run a bakery.")
    try:
        pipeline = await make_pipeline(
            HIKER_BOT=f"{__name__}:bot", HIKER_USER_SEND_INTERVAL_SECONDS="0"
        )
        voice = b"OggS\x00\x02" + b"opus-frames" * 300
        media_id = await pipeline.upload_media(voice, "audio/ogg")
        user = "15550700001"
        note = {
            "from": user,
            "id": new_wamid(),
            "timestamp": str(int(time.time())),
            "type": "audio",
            "audio": {
                "id": media_id,
                "mime_type": "audio/ogg; codecs=opus",
                "sha256": sha256_of(voice),
                "voice": True,
            },
        }
        body = webhook_body(messages_change([note], phone_number_id=PHONE_NUMBER_ID))
        assert await pipeline.post(body) == 200

        assert await pipeline.wait_for_texts(user, 1) == ["We open at 9, see you!"]
        [(heard, filename, content_type)] = model.heard
        assert heard == voice
        assert (filename, content_type) == (f"{note['id']}.ogg", "audio/ogg")
        [request] = model.requests
        assert request.contents("system") == ["You run a bakery."]
        assert request.contents("user") == ["[voice note] when do you open tomorrow"]
    finally:
        bot.ai.detach()
