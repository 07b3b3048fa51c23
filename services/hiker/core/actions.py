"""What a reply sends: one model per kind of WhatsApp message, within Meta's limits, and the
read receipt (``MarkRead``) that may go before it. What a bot asks of Hiker beside them (a
reminder, a handoff) is ``core.requests``.

A reply is a list of these actions, sent in order. The same models read the rules file
(``reply: {buttons: {...}}``), carry a reply on the broker (``SendMessage.actions``, tagged by
``type``) and back the Python API (``hiker.bot``). Their limits are Meta's (a button title is
at most 20 characters, 1 to 3 buttons, ...), so that a reply Graph would refuse is refused when
the rules file is read or when a responder returns it, with a message that says what is wrong,
instead of being parked later with error 100. ``sender.graph.action_payload`` turns each into
the request body Meta's schema describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

# Meta's limits (Cloud API message object): characters, not bytes.
TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
LIST_ROWS_MAX = 10
CAPTION_MAX = 1024


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Action(_Part):
    # Reply to (quote) a message: a wamid. ``quote: true`` quotes the message being answered
    # (what a rules file, which cannot know the id, writes); it is resolved before sending.
    reply_to: str | None = None
    quote: bool = False


class Text(_Action):
    """A text message; ``preview_url`` shows a preview of the first link in it."""

    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=TEXT_MAX)
    preview_url: bool = False


class Option(_Part):
    """A reply button: ``id`` comes back when the user taps it, ``title`` is what they see."""

    id: str = Field(min_length=1, max_length=BUTTON_ID_MAX)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


class Buttons(_Action):
    """A message with 1 to 3 reply buttons."""

    type: Literal["buttons"] = "buttons"
    body: str = Field(min_length=1, max_length=INTERACTIVE_BODY_MAX)
    options: Sequence[Option] = Field(min_length=1, max_length=3)
    header: str | None = Field(default=None, min_length=1, max_length=HEADER_MAX)
    footer: str | None = Field(default=None, min_length=1, max_length=FOOTER_MAX)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        _distinct("button ids", [o.id for o in self.options])
        _distinct("button titles", [o.title for o in self.options])
        return self


class Row(_Part):
    """One choice of a list: ``id`` comes back when the user picks it."""

    id: str = Field(min_length=1, max_length=ROW_ID_MAX)
    title: str = Field(min_length=1, max_length=ROW_TITLE_MAX)
    description: str | None = Field(default=None, max_length=ROW_DESCRIPTION_MAX)


class Section(_Part):
    title: str | None = Field(default=None, min_length=1, max_length=SECTION_TITLE_MAX)
    rows: Sequence[Row] = Field(min_length=1, max_length=LIST_ROWS_MAX)


class ListMenu(_Action):
    """A list message: ``button`` opens the list of sections and rows (at most 10 rows)."""

    type: Literal["list"] = "list"
    body: str = Field(min_length=1, max_length=INTERACTIVE_BODY_MAX)
    button: str = Field(min_length=1, max_length=LIST_BUTTON_MAX)
    sections: Sequence[Section] = Field(min_length=1, max_length=10)
    header: str | None = Field(default=None, min_length=1, max_length=HEADER_MAX)
    footer: str | None = Field(default=None, min_length=1, max_length=FOOTER_MAX)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > LIST_ROWS_MAX:
            raise ValueError(f"a list holds at most {LIST_ROWS_MAX} rows in all, not {len(rows)}")
        _distinct("row ids", [row.id for row in rows])
        if len(self.sections) > 1 and any(s.title is None for s in self.sections):
            raise ValueError("every section needs a title when there are several")
        return self


class _Media(_Action):
    """Media by ``link`` (a public HTTPS URL) or by ``id`` (uploaded to Meta): exactly one."""

    link: HttpUrl | None = Field(default=None, json_schema_extra={"pattern": "^https://"})
    id: str | None = Field(default=None, min_length=1)

    @field_validator("link")
    @classmethod
    def _https_only(cls, link: HttpUrl | None) -> HttpUrl | None:
        # Meta fetches the media itself and refuses plain http: better said now than parked.
        if link is not None and link.scheme != "https":
            raise ValueError("must be an https:// URL: Meta requires HTTPS for media links")
        return link

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.link is None) == (self.id is None):
            raise ValueError("give exactly one of link and id")
        return self


class Image(_Media):
    type: Literal["image"] = "image"
    caption: str | None = Field(default=None, min_length=1, max_length=CAPTION_MAX)


class Video(_Media):
    type: Literal["video"] = "video"
    caption: str | None = Field(default=None, min_length=1, max_length=CAPTION_MAX)


class Audio(_Media):
    type: Literal["audio"] = "audio"


class Document(_Media):
    type: Literal["document"] = "document"
    caption: str | None = Field(default=None, min_length=1, max_length=CAPTION_MAX)
    filename: str | None = Field(default=None, min_length=1, max_length=240)


class Sticker(_Media):
    type: Literal["sticker"] = "sticker"


class Location(_Action):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, min_length=1, max_length=1000)
    address: str | None = Field(default=None, min_length=1, max_length=1000)


class ContactName(_Part):
    formatted_name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None


class ContactPhone(_Part):
    phone: str = Field(min_length=1)
    type: Literal["HOME", "WORK"] | None = None
    wa_id: str | None = None


class ContactEmail(_Part):
    email: str = Field(min_length=3)
    type: Literal["HOME", "WORK"] | None = None


class Contact(_Part):
    name: ContactName
    phones: Sequence[ContactPhone] = ()
    emails: Sequence[ContactEmail] = ()


class Contacts(_Action):
    """One or more contact cards."""

    type: Literal["contacts"] = "contacts"
    contacts: Sequence[Contact] = Field(min_length=1, max_length=257)


class Template(_Action):
    """An approved template: the only kind of message allowed outside the 24-hour window.

    ``components`` are passed to Graph as given (header/body/button parameters), e.g.
    ``[{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]``.
    """

    type: Literal["template"] = "template"
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=15)
    components: Sequence[dict[str, Any]] = ()


class Reaction(_Action):
    """An emoji on a message: by default the user's message being answered; "" removes it."""

    type: Literal["reaction"] = "reaction"
    emoji: str = Field(max_length=16)
    message_id: str | None = None


class MarkRead(_Part):
    """Mark a received message read (blue ticks), optionally showing "typing..." for a while."""

    type: Literal["read"] = "read"
    message_id: str = Field(min_length=1)
    typing: bool = False


AnyAction = (
    Text
    | Buttons
    | ListMenu
    | Image
    | Video
    | Audio
    | Document
    | Sticker
    | Location
    | Contacts
    | Template
    | Reaction
    | MarkRead
)
# As a field of a contract: tagged by ``type`` on the wire.
Action = Annotated[AnyAction, Field(discriminator="type")]

# The actions a rules file or a responder writes, by the name the rules file uses.
ACTIONS_BY_NAME: dict[str, type[BaseModel]] = {
    "text": Text,
    "buttons": Buttons,
    "list": ListMenu,
    "image": Image,
    "video": Video,
    "audio": Audio,
    "document": Document,
    "sticker": Sticker,
    "location": Location,
    "contacts": Contacts,
    "template": Template,
    "reaction": Reaction,
}


Where = tuple[str | int, ...]


class InvalidAction(ValueError):
    """What is wrong with an action as written, each problem with where it is (a path whose
    first part is the action's name)."""

    def __init__(self, problems: list[tuple[Where, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def parse_action(name: str, content: object) -> AnyAction:
    """The action named ``name`` (a key of ``ACTIONS_BY_NAME``) with the fields ``content``, as
    the rules file and ``hiker api`` write it (a text may be given as its body alone).

    Raises InvalidAction naming every problem, Meta's limits said as such.
    """
    model = ACTIONS_BY_NAME.get(name)
    if model is None:
        raise InvalidAction([((), f"unknown action {name!r}; one of {', '.join(ACTIONS_BY_NAME)}")])
    if isinstance(content, str) and name == "text":
        content = {"body": content}
    if not isinstance(content, dict):
        raise InvalidAction([((name,), "expected a mapping of the action's fields")])
    try:
        action: AnyAction = model.model_validate(content)  # type: ignore[assignment]
    except ValidationError as exc:
        raise InvalidAction(
            [((name, *error["loc"]), _meta_message(error)) for error in exc.errors()]
        ) from None
    return action


def _meta_message(error: Mapping[str, Any]) -> str:
    """Pydantic's message, with Meta's limits said as such."""
    limit = error.get("ctx", {}).get("max_length")
    if error["type"] == "string_too_long":
        return f"at most {limit} characters (Meta's limit), not {len(error['input'])}"
    if error["type"] == "too_long":
        return f"at most {limit} (Meta's limit), not {len(error['input'])}"
    return str(error["msg"]).removeprefix("Value error, ")


def readable(action: AnyAction) -> str | None:
    """What a person reads of ``action`` (history, logs): its text, caption or a short label."""
    match action:
        case Text() | Buttons() | ListMenu():
            return action.body
        case Image() | Video() | Document():
            return action.caption
        case Template():
            return f"[template {action.name}]"
        case Location():
            return action.name or action.address
        case Reaction():
            return action.emoji
    return None


def answering(action: AnyAction, wamid: str) -> AnyAction:
    """``action`` as sent in answer to the message ``wamid``: a reaction without a message
    reacts to it, ``quote: true`` quotes it."""
    if isinstance(action, Reaction) and action.message_id is None:
        return action.model_copy(update={"message_id": wamid})
    if isinstance(action, _Action) and action.quote and action.reply_to is None:
        return action.model_copy(update={"reply_to": wamid, "quote": False})
    return action


def _distinct(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} must be distinct: {value!r} is there twice")
        seen.add(value)
