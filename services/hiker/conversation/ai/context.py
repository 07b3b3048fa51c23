"""What the model is told of a conversation: the history as ``user`` / ``assistant`` messages
(a person's messages during a handoff marked as theirs), and the new messages, voice notes
transcribed and images shown when so configured.

Message shapes are OpenAI's chat format (``{"role", "content"}``, content parts ``{"type":
"text"}`` and ``{"type": "image_url", "image_url": {"url": "data:..."}}``), taken from OpenAI's
API reference (SDK types), not from Meta. What a message carries is read from Meta's message
object (``MessageReceived.raw``) by the field names of Meta's ``messages`` webhook reference.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hiker.conversation.state import Turn
from hiker.core.ai_model import ChatMessage, ModelClient, ModelRejected, Usage
from hiker.core.contracts import MessageReceived
from hiker.core.media import MediaError, MediaSource

log = logging.getLogger(__name__)

# How a person's message is shown to the model, and what the model is told of the mark.
PERSON_MARK: Final = "[person]"
PERSON_NOTE: Final = (
    f"Assistant messages that start with {PERSON_MARK} were written by a person of the "
    "business while the conversation was handed to them, not by you."
)
# What a message that is not text is called, where its type's name would not say it.
_LABELS: Final = {"audio": "audio", "interactive": "choice", "button": "choice", "list": "list"}
# Kinds whose text is what the user said or chose: a text, a tapped button's or row's title.
_AS_SAID: Final = ("text", "interactive", "button")
# The file name ``/audio/transcriptions`` is given: servers take the format from its extension.
_AUDIO_EXTENSIONS: Final = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "audio/wav": "wav",
    "audio/webm": "webm",
}
VISION_TYPES: Final = ("image/jpeg", "image/png", "image/webp", "image/gif")


def is_person(turn: Turn) -> bool:
    """Whether an outbound turn was written by a person: an echo of the WhatsApp Business app
    (its id is Graph's wamid, ``wamid.…``) or a send through ``hiker api`` (``api:…``).
    Conversation keys its own replies ``<kind>:<wamid>`` (``reply:``, ``followup:``,
    ``remind:``, the AI's own), so any other ``kind:`` is the bot's."""
    return turn.direction == "out" and (turn.id.startswith("api:") or ":" not in turn.id)


def marker(kind: str, text: str | None = None) -> str:
    """A message that is not plain text, as the model reads it: ``[image] the caption``."""
    label = f"[{_LABELS.get(kind, kind)}]"
    return f"{label} {text}" if text else label


def history_messages(history: Sequence[Turn]) -> list[ChatMessage]:
    """The turns before this one, oldest first: the user's as ``user`` messages, the
    business's as ``assistant`` messages, a person's marked ``[person]``."""
    messages: list[ChatMessage] = []
    for turn in history:
        plain = turn.type in _AS_SAID and turn.text
        text = turn.text if plain else marker(turn.type, turn.text)
        if turn.direction == "in":
            messages.append({"role": "user", "content": text})
        elif is_person(turn):
            messages.append({"role": "assistant", "content": f"{PERSON_MARK} {text}"})
        else:
            messages.append({"role": "assistant", "content": text})
    return messages


@dataclass(frozen=True)
class Medium:
    """A medium of a message, as Meta's message object describes it."""

    id: str
    mime_type: str | None
    sha256: str | None
    caption: str | None
    voice: bool


def medium_of(message: MessageReceived) -> Medium | None:
    part = message.raw.get(message.message_type)
    if not isinstance(part, dict) or not isinstance(part.get("id"), str):
        return None

    def text(name: str) -> str | None:
        value = part.get(name)
        return value if isinstance(value, str) and value else None

    return Medium(
        part["id"], text("mime_type"), text("sha256"), text("caption"), part.get("voice") is True
    )


@dataclass
class Read:
    """A new message as the model reads it, and what reading it cost."""

    content: str | list[dict[str, Any]]
    transcript: str | None = None
    usage: Usage = field(default_factory=Usage)
    calls: int = 0


class MessageReader:
    """Reads the new messages of a turn: a voice note transcribed (``client.transcribe``), an
    image shown to a vision model, anything else as its text or a short marker.

    A medium that cannot be had (expired, too large, Graph failing) or that the API will not
    transcribe is read as a marker saying so: the user still gets an answer. ``ModelUnavailable``
    from the transcription propagates, as from a completion: the turn is asked again later.
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        media: MediaSource | None,
        vision: bool,
        transcribe: bool,
    ) -> None:
        self._client = client
        self._media = media
        self._vision = vision
        self._transcribe = transcribe

    async def read(self, message: MessageReceived) -> Read:
        kind = message.message_type
        if kind == "text":
            return Read(message.text or "")
        medium = medium_of(message) if kind in ("audio", "image") else None
        if kind == "audio" and medium is not None:
            return await self._hear(message, medium)
        if kind == "image" and medium is not None and self._vision:
            return await self._see(message, medium)
        return Read(_described(message))

    async def _download(self, message: MessageReceived, medium: Medium) -> bytes | None:
        if self._media is None:
            return None
        try:
            return await self._media.fetch(message.phone_number_id, medium.id, medium.sha256)
        except MediaError as exc:
            log.warning(
                "a medium for the model could not be had; the model is told so",
                extra={"wamid": message.wamid, "kind": message.message_type, "error": str(exc)},
            )
            return None

    async def _hear(self, message: MessageReceived, medium: Medium) -> Read:
        label = "voice note" if medium.voice else "audio"
        if not self._transcribe:
            return Read(f"[{label}]")
        audio = await self._download(message, medium)
        if audio is None:
            return Read(f"[{label}: it could not be downloaded]")
        mime = (medium.mime_type or "audio/ogg").split(";", 1)[0].strip().lower()
        try:
            transcript = await self._client.transcribe(
                audio,
                filename=f"{message.wamid}.{_AUDIO_EXTENSIONS.get(mime, 'ogg')}",
                content_type=mime,
            )
        except ModelRejected as exc:
            log.warning(
                "the API would not transcribe a voice note; the model is told so",
                extra={"wamid": message.wamid, "error": str(exc)},
            )
            return Read(f"[{label}: it could not be transcribed]", calls=1)
        text = transcript.text.strip()
        if not text:
            return Read(f"[{label}: nothing could be made out]", usage=transcript.usage, calls=1)
        return Read(f"[{label}] {text}", text, transcript.usage, 1)

    async def _see(self, message: MessageReceived, medium: Medium) -> Read:
        caption = medium.caption or "[image]"
        mime = (medium.mime_type or "image/jpeg").split(";", 1)[0].strip().lower()
        if mime not in VISION_TYPES:
            return Read(_described(message))
        data = await self._download(message, medium)
        if data is None:
            return Read(f"{_described(message)} (it could not be downloaded)")
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return Read(
            [{"type": "text", "text": caption}, {"type": "image_url", "image_url": {"url": url}}]
        )


def _described(message: MessageReceived) -> str:
    """A message the model cannot see or hear, in a short marker with the text it carries."""
    kind, raw = message.message_type, message.raw
    if kind in ("interactive", "button") and message.text:
        return message.text  # a tap on a reply button or list row: its title, as the user saw it
    found, listed = raw.get(kind), raw.get("contacts")
    part: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "location":
        where = ", ".join(str(part[k]) for k in ("name", "address") if part.get(k))
        spot = f"({part.get('latitude')}, {part.get('longitude')})"
        return marker(kind, f"{where} {spot}".strip())
    if kind == "contacts":
        cards: list[Any] = listed if isinstance(listed, list) else []
        names = [
            str(card.get("name", {}).get("formatted_name", ""))
            for card in cards
            if isinstance(card, dict) and isinstance(card.get("name"), dict)
        ]
        return marker("contact", ", ".join(n for n in names if n) or None)
    if kind == "reaction":
        return marker("reaction", part.get("emoji") or "removed")
    if kind == "document":
        name = part.get("filename")
        return marker(kind, " ".join(str(t) for t in (name, part.get("caption")) if t) or None)
    return marker(kind, message.text)
