"""Which messages a handler takes: predicates on ``Message`` that compose with ``&``, ``|``, ``~``.

```python
@bot.on_message(filters.image & filters.caption_contains("invoice"))
@bot.on_message(filters.text & ~filters.forwarded)
```

Text comparisons ignore surrounding space and case, as the rules file's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hiker.bot.messages import Message


class Filter:
    """A predicate on a message, named for error messages and reprs."""

    def __init__(self, test: Callable[[Message], bool], name: str) -> None:
        self._test = test
        self.name = name

    def __call__(self, message: Message) -> bool:
        return self._test(message)

    def __and__(self, other: Filter) -> Filter:
        return Filter(lambda m: self(m) and other(m), f"({self.name} & {other.name})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(lambda m: self(m) or other(m), f"({self.name} | {other.name})")

    def __invert__(self) -> Filter:
        return Filter(lambda m: not self(m), f"~{self.name}")

    def __repr__(self) -> str:
        return f"Filter({self.name})"


def _folded(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def kind(*kinds: str) -> Filter:
    """Messages of any of Meta's ``kinds`` (``text``, ``image``, ``interactive``...)."""
    return Filter(lambda m: m.kind in kinds, f"kind{kinds}")


any_message = Filter(lambda m: True, "any_message")
text = kind("text")
image = kind("image")
video = kind("video")
audio = Filter(lambda m: m.audio is not None, "audio")
voice = Filter(lambda m: m.audio is not None and m.audio.voice, "voice")
document = kind("document")
sticker = kind("sticker")
media = Filter(lambda m: m.media is not None, "media")
location = kind("location")
contacts = kind("contacts")
reaction = kind("reaction")
order = kind("order")
system = kind("system")
unsupported = kind("unsupported")
edit = kind("edit")
revoke = kind("revoke")
# A tapped reply button, list row or template quick-reply button.
tap = Filter(lambda m: m.tap is not None, "tap")
flow = Filter(lambda m: m.flow is not None, "flow")
# A reply to (a quote of) an earlier message.
reply = Filter(lambda m: m.context is not None and m.context.message_id is not None, "reply")
forwarded = Filter(
    lambda m: m.context is not None and (m.context.forwarded or m.context.frequently_forwarded),
    "forwarded",
)
# Came from a Click to WhatsApp ad or post.
referral = Filter(lambda m: m.referral is not None, "referral")


def text_is(*texts: str) -> Filter:
    """A text (or tapped title) equal to one of ``texts``, trimmed, in any case."""
    wanted = {_folded(t) for t in texts}
    return Filter(lambda m: m.text is not None and _folded(m.text) in wanted, f"text_is{texts}")


def text_startswith(*prefixes: str) -> Filter:
    """A text that is one of ``prefixes`` or starts with one and a space (``echo hi``)."""
    wanted = tuple(_folded(p) for p in prefixes)

    def test(m: Message) -> bool:
        said = _folded(m.text)
        return bool(said) and any(said == p or said.startswith(p + " ") for p in wanted)

    return Filter(test, f"text_startswith{prefixes}")


def text_matches(pattern: str | re.Pattern[str]) -> Filter:
    """A text in which ``pattern`` matches (``re.search``); compile flags of your own."""
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    return Filter(
        lambda m: m.text is not None and compiled.search(m.text) is not None,
        f"text_matches({compiled.pattern!r})",
    )


def caption_contains(*words: str) -> Filter:
    """A medium whose caption contains one of ``words``, in any case."""
    wanted = tuple(w.casefold() for w in words)
    return Filter(
        lambda m: m.caption is not None and any(w in m.caption.casefold() for w in wanted),
        f"caption_contains{words}",
    )


def button(*ids: str) -> Filter:
    """A tap on a button or list row whose id is one of ``ids`` (any id when none given)."""
    return Filter(
        lambda m: m.button_id is not None and (not ids or m.button_id in ids), f"button{ids}"
    )


def mime_type(*prefixes: str) -> Filter:
    """A medium whose MIME type starts with one of ``prefixes`` (``application/pdf``)."""
    return Filter(
        lambda m: (
            m.media is not None
            and m.media.mime_type is not None
            and m.media.mime_type.startswith(prefixes)
        ),
        f"mime_type{prefixes}",
    )


def from_users(*ids: str) -> Filter:
    """Messages from these users (their ``user.id`` or ``user.phone``)."""
    wanted = set(ids)
    return Filter(
        lambda m: m.user.id in wanted or (m.user.phone is not None and m.user.phone in wanted),
        f"from_users({len(ids)})",
    )
