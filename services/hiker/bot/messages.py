"""What a bot's handlers receive: a typed view of the user's message, one per kind Meta sends.

Every field is read from Meta's message object as its webhook reference names it (``messages``
webhook: text, image, video, audio, document, sticker, location, contacts, interactive,
button, reaction, order, system, unsupported, edit, revoke); ``msg.raw`` keeps the object
whole for what a view leaves out. The views are plain data of the SDK's own: the broker's
events may change without breaking a bot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiker.core.media import MediaSource, MediaUnavailable


@dataclass(frozen=True)
class User:
    """Who wrote: ``id`` keys the conversation (the business-scoped user id whenever Meta
    sends one, else the phone number); ``phone`` when Meta shares it."""

    id: str
    phone: str | None = None
    # The WhatsApp username, when the user adopted one and the event carries it.
    username: str | None = None
    # The profile name the user chose.
    name: str | None = None


@dataclass(frozen=True)
class Media:
    """A photo, video, audio, document or sticker the user sent, as Meta describes it.

    ``id`` is Meta's media id (valid for a limited time): what a download resolves through
    Graph; ``sha256`` checks the bytes. ``await media.download()`` gives the bytes (kept once
    in the media store, ``HIKER_MEDIA_STORE``); ``await media.save(path)`` writes them to a
    file. Both raise a ``hiker.bot.MediaError``: ``MediaExpired`` when Meta no longer has the
    medium, ``MediaTooLarge`` over ``HIKER_MEDIA_MAX_BYTES``, ``MediaMismatch`` when the bytes
    are not those announced, ``MediaUnavailable`` when Graph keeps failing.
    """

    kind: str  # "image", "video", "audio", "document" or "sticker"
    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None  # documents
    voice: bool = False  # audio recorded as a voice note
    animated: bool = False  # stickers
    url: str | None = None
    # The business number it came to (whose token downloads it), and what downloads it.
    phone_number_id: str = field(default="", compare=False, repr=False)
    source: MediaSource | None = field(default=None, compare=False, repr=False)

    async def download(self) -> bytes:
        """The medium's bytes, checked against its sha256."""
        if self.source is None:
            raise MediaUnavailable(
                "this message came with no media source: download() works in the conversation "
                "service and in hiker.testing.BotHarness"
            )
        return await self.source.fetch(self.phone_number_id, self.id, self.sha256)

    async def save(self, path: str | Path) -> Path:
        """Write the medium to ``path`` (replaced when it exists); the path written."""
        target = Path(path)
        data = await self.download()
        await asyncio.to_thread(target.write_bytes, data)
        return target


@dataclass(frozen=True)
class Place:
    """A location the user shared: where they are, or a place they picked."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ContactCard:
    """One contact card the user shared."""

    name: str | None
    phones: tuple[str, ...] = ()
    # The WhatsApp ids of those phones that are on WhatsApp.
    wa_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Tap:
    """What the user tapped: a reply button, a list row, or a template's quick-reply button."""

    kind: str  # "button", "list" or "template"
    id: str
    title: str | None = None
    description: str | None = None  # list rows


@dataclass(frozen=True)
class Reacted:
    """An emoji the user put on (or, ``emoji`` None, took off) a message of the business."""

    message_id: str | None
    emoji: str | None


@dataclass(frozen=True)
class OrderItem:
    product_retailer_id: str
    quantity: int
    item_price: float | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Order:
    """A cart the user sent from the business's catalogue."""

    catalog_id: str | None
    items: tuple[OrderItem, ...]
    text: str | None = None


@dataclass(frozen=True)
class Notice:
    """A system message from WhatsApp (a change of the user's identity key...). A change of
    the user's ids (``user_changed_number``, ``user_changed_user_id``) never reaches a bot: the
    pipeline moves the conversation to the new id, and nobody answers it."""

    type: str | None
    body: str | None
    wa_id: str | None = None


@dataclass(frozen=True)
class FlowReply:
    """A completed WhatsApp Flow (``interactive`` ``nfm_reply``): its answers, parsed."""

    name: str | None
    body: str | None
    response: dict[str, Any]


@dataclass(frozen=True)
class CallPermission:
    """The user's answer to a call permission request."""

    response: str | None  # "accept" or "reject"
    expires_at: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class MetaError:
    """Why Meta could not hand over a message (``unsupported``, a failed interactive)."""

    code: int | None
    title: str | None
    details: str | None = None


@dataclass(frozen=True)
class Context:
    """What the message refers to: the message it replies to, or that it was forwarded."""

    message_id: str | None = None  # the message replied to (a wamid)
    sender: str | None = None  # who sent that message
    forwarded: bool = False
    frequently_forwarded: bool = False
    # A product the user asked about from the catalogue: (catalog id, product retailer id).
    product: tuple[str, str] | None = None


@dataclass(frozen=True)
class Referral:
    """The ad or post (Click to WhatsApp) that brought the user."""

    source_type: str | None
    source_id: str | None
    source_url: str | None
    headline: str | None = None
    body: str | None = None
    ctwa_clid: str | None = None


@dataclass(frozen=True)
class Message:
    """A message a user sent the business, with the part its kind carries.

    ``kind`` is Meta's ``type``: ``text``, ``image``, ``video``, ``audio``, ``document``,
    ``sticker``, ``location``, ``contacts``, ``interactive``, ``button``, ``reaction``,
    ``order``, ``system``, ``edit``, ``revoke`` or ``unsupported``. ``text`` is what a person
    reads: a text's body, a medium's caption, a tapped button's title. ``button_id`` is what
    the bot itself wrote as the id of the button or row tapped.
    """

    id: str
    kind: str
    user: User
    phone_number_id: str
    timestamp: int
    text: str | None = None
    button_id: str | None = None
    tap: Tap | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Place | None = None
    contacts: tuple[ContactCard, ...] = ()
    reaction: Reacted | None = None
    order: Order | None = None
    system: Notice | None = None
    flow: FlowReply | None = None
    call_permission: CallPermission | None = None
    # An edit: the message edited, and what it says now (a view of its own).
    edited_id: str | None = None
    edit: Message | None = None
    # A revoke: the message the user deleted.
    revoked_id: str | None = None
    errors: tuple[MetaError, ...] = ()
    context: Context | None = None
    referral: Referral | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def media(self) -> Media | None:
        """The photo, video, audio, document or sticker, whichever this message carries."""
        return self.image or self.video or self.audio or self.document or self.sticker

    @property
    def caption(self) -> str | None:
        media = self.media
        return media.caption if media is not None else None
