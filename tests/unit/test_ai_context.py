"""What the model is told of a conversation: a person's messages during a handoff marked, voice
notes transcribed (and kept by wamid), images shown to a vision model or described, the rest
as short markers with their text."""

from __future__ import annotations

import base64
from typing import Any

from hiker.conversation.ai.context import PERSON_MARK, PERSON_NOTE, is_person
from hiker.conversation.ai.turn import TurnInput, TurnResult, TurnRunner
from hiker.conversation.state import Turn
from hiker.core.ai_model import ModelRejected, ModelUnavailable, Usage
from hiker.core.contracts import MessageReceived
from hiker.testing import FakeModel
from hiker.testing.inbound import contacts, location, media, reaction
from hiker.testing.media import InMemoryMedia

PNID = "100000000000001"


def received(
    raw: dict[str, Any], wamid: str = "wamid.IN1", text: str | None = None
) -> MessageReceived:
    return MessageReceived(
        wamid=wamid,
        phone_number_id=PNID,
        user="15550001111",
        message_type=raw["type"],
        text=text,
        timestamp=1_700_000_000,
        received_at=1_700_000_000.0,
        raw={"id": wamid, **raw},
    )


async def run(
    runner: TurnRunner, *messages: MessageReceived, history: list[Turn] | None = None
) -> TurnResult:
    return await runner.run(TurnInput(None, history or [], list(messages)))


async def test_a_persons_messages_during_a_handoff_are_marked_as_theirs() -> None:
    history = [
        Turn("in", "wamid.U1", "text", "I want a refund", 1),
        Turn("out", "reply:wamid.U1", "text", "Let me pass you to a colleague.", 2),
        Turn("out", "wamid.HBgLMTU1NTAwMDExMTEVAgARGBI", "text", "Hi, Ana here. Refunded.", 3),
        Turn("out", "api:0123abcd", "image", "your receipt", 4),
        Turn("in", "wamid.U2", "image", "thanks!", 5),
        Turn("out", "followup:wamid.U2", "text", "Anything else?", 6),
    ]
    model = FakeModel("Glad it's sorted.")
    await run(
        TurnRunner(model),
        received({"type": "text", "text": {"body": "bye"}}, text="bye"),
        history=history,
    )

    messages = model.requests[0].messages
    assert messages[0] == {"role": "system", "content": PERSON_NOTE}
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "I want a refund"),
        ("assistant", "Let me pass you to a colleague."),
        ("assistant", f"{PERSON_MARK} Hi, Ana here. Refunded."),
        ("assistant", f"{PERSON_MARK} [image] your receipt"),
        ("user", "[image] thanks!"),
        ("assistant", "Anything else?"),
        ("user", "bye"),
    ]
    assert [is_person(t) for t in history] == [False, False, True, True, False, False]


async def test_no_note_about_persons_when_none_wrote() -> None:
    model = FakeModel("hi")
    history = [Turn("in", "wamid.U1", "text", "hello", 1)]
    await run(TurnRunner(model), received({"type": "text"}, text="x"), history=history)
    assert model.requests[0].contents("system") == []


def voice_note(store: InMemoryMedia, data: bytes, media_id: str = "900") -> MessageReceived:
    store.add(media_id, data)
    raw = media("audio", media_id, mime_type="audio/ogg; codecs=opus", data=data, voice=True)
    return received(raw, wamid="wamid.VOICE1")


async def test_a_voice_note_is_downloaded_transcribed_and_answered_as_the_users_words() -> None:
    store = InMemoryMedia()
    model = FakeModel("Your order ships Monday.", transcripts=["where is my order"])
    runner = TurnRunner(model, media=store, transcribe=True)
    result = await run(runner, voice_note(store, b"OggS-opus-bytes"))

    assert model.heard == [(b"OggS-opus-bytes", "wamid.VOICE1.ogg", "audio/ogg")]
    assert model.requests[0].contents("user") == ["[voice note] where is my order"]
    assert result.transcripts == {"wamid.VOICE1": "where is my order"}
    assert result.calls == 2
    assert result.usage.prompt_tokens >= 1
    assert result.text == "Your order ships Monday."


async def test_a_voice_note_without_transcription_or_media_is_a_marker() -> None:
    store = InMemoryMedia()
    model = FakeModel("Please write it.", "Please write it.", "Sorry.", "Sorry.")
    await run(TurnRunner(model, media=store), voice_note(store, b"a"))
    await run(TurnRunner(model, transcribe=True), voice_note(store, b"a"))
    expired = voice_note(store, b"b", media_id="901")
    store.expire("901")
    await run(TurnRunner(model, media=store, transcribe=True), expired)
    rejected = FakeModel("Sorry.", transcripts=[ModelRejected("unsupported format")])
    result = await run(TurnRunner(rejected, media=store, transcribe=True), voice_note(store, b"c"))

    assert [r.contents("user") for r in model.requests[:3]] == [
        ["[voice note]"],
        ["[voice note: it could not be downloaded]"],
        ["[voice note: it could not be downloaded]"],
    ]
    assert rejected.requests[0].contents("user") == ["[voice note: it could not be transcribed]"]
    assert result.transcripts == {}


async def test_a_transcription_the_api_cannot_serve_now_propagates() -> None:
    store = InMemoryMedia()
    model = FakeModel(transcripts=[ModelUnavailable("429", outcome="rate_limited")])
    try:
        await run(TurnRunner(model, media=store, transcribe=True), voice_note(store, b"x"))
    except ModelUnavailable:
        pass
    else:
        raise AssertionError("ModelUnavailable should propagate to the engine")
    assert model.requests == []


def photo(store: InMemoryMedia, data: bytes, caption: str | None) -> MessageReceived:
    store.add("700", data)
    raw = media("image", "700", mime_type="image/png", data=data, caption=caption)
    return received(raw, wamid="wamid.PHOTO1", text=caption)


async def test_with_vision_an_image_goes_as_an_image_part_with_its_caption() -> None:
    store = InMemoryMedia()
    model = FakeModel("A red shoe.", "A red shoe.")
    runner = TurnRunner(model, media=store, vision=True)
    await run(runner, photo(store, b"\x89PNG-bytes", "is this in stock?"))
    await run(runner, photo(store, b"\x89PNG-bytes", None))

    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG-bytes").decode()
    assert model.requests[0].contents("user") == [
        [
            {"type": "text", "text": "is this in stock?"},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]
    ]
    assert model.requests[1].contents("user")[0][0] == {"type": "text", "text": "[image]"}


async def test_without_vision_an_image_is_its_caption() -> None:
    store = InMemoryMedia()
    model = FakeModel("ok", "ok")
    await run(TurnRunner(model, media=store), photo(store, b"png", "is this in stock?"))
    await run(TurnRunner(model, media=store), photo(store, b"png", None))
    assert [r.contents("user") for r in model.requests] == [
        ["[image] is this in stock?"],
        ["[image]"],
    ]


async def test_other_kinds_are_short_markers_with_what_text_they_carry() -> None:
    tap = {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "b", "title": "Size 42"}},
    }
    messages = [
        received(location(52.5, 13.4, "Shop", "Main St 1"), "wamid.A"),
        received(contacts([("Ana Lima", "+15550002222")]), "wamid.B"),
        received(reaction("wamid.OUT1", "👍"), "wamid.C"),
        received(tap, "wamid.D", text="Size 42"),
        received(
            media(
                "document",
                "1",
                mime_type="application/pdf",
                data=b"%PDF",
                filename="bill.pdf",
                caption="my bill",
            ),
            "wamid.E",
            text="my bill",
        ),
        received(media("sticker", "2", mime_type="image/webp", data=b"s"), "wamid.F"),
        received({"type": "unsupported"}, "wamid.G"),
    ]
    model = FakeModel(_answer := "ok")
    result = await run(TurnRunner(model, vision=True), *messages)

    assert result.text == _answer
    assert model.requests[0].contents("user") == [
        "[location] Shop, Main St 1 (52.5, 13.4)",
        "[contact] Ana Lima",
        "[reaction] 👍",
        "Size 42",
        "[document] bill.pdf my bill",
        "[sticker]",
        "[unsupported]",
    ]


async def test_usage_adds_the_transcription_to_the_completions() -> None:
    store = InMemoryMedia()
    model = FakeModel("ok", transcripts=["hello"], usage=Usage(100, 10))
    result = await run(
        TurnRunner(model, media=store, transcribe=True), voice_note(store, b"x" * 3000)
    )
    assert result.usage == Usage(103, 10)
