"""The name of every Redis key Hiker writes, and the names they had before hash tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final


class Keys:
    """Every Redis key Hiker writes, each starting with ``prefix`` (tests and tenants apart).

    A key's hash tag (the part in braces) decides its Redis Cluster slot; keys that one script
    touches share it:
    - a conversation's: ``{<phone number id>:<user>}`` for its state, history, its messages'
      claims, follow-ups and reminders (a message's claim records the message in the state
      and the history, in one script);
    - a phone number's: ``{<phone number id>}`` for its sends' claims and its pacing, the
      number's and per user (a send's claim reserves both slots, in one script).

    Before hash tags the same keys had other names (``legacy``): with ``adopt_legacy`` a key
    still under its old name is moved to the new one the first time a claim touches it, and
    reads look for it there, so that an install upgraded in place keeps its claims, state and
    pacing (docs/architecture.md, "Redis keys").
    """

    def __init__(
        self, prefix: str, *, adopt_legacy: bool = False, adopt_phone_keys: bool = False
    ) -> None:
        """``adopt_phone_keys``: move a conversation kept under a user's phone number to their
        business-scoped user id when a message carries both (``adoptions``). The move renames
        across hash slots: never on a Redis Cluster."""
        self.prefix = prefix
        self.adopt_legacy = adopt_legacy
        self.adopt_phone_keys = adopt_phone_keys

    def claim(self, phone_number_id: str, user: str, wamid: str) -> str:
        return f"{self.prefix}claim:{{{phone_number_id}:{user}}}:{wamid}"

    def conversation(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}conv:{{{phone_number_id}:{user}}}"

    def followup(self, phone_number_id: str, user: str, wamid: str) -> str:
        return f"{self.prefix}followup:{{{phone_number_id}:{user}}}:{wamid}"

    def reminder(self, phone_number_id: str, user: str, wamid: str, reminder: str) -> str:
        return f"{self.prefix}remind:{{{phone_number_id}:{user}}}:{wamid}:{reminder}"

    def ai_turn(self, phone_number_id: str, user: str, wamid: str) -> str:
        """The claim of the AI turn that answers the user's messages up to ``wamid``."""
        return f"{self.prefix}aiturn:{{{phone_number_id}:{user}}}:{wamid}"

    def ai_running(self, phone_number_id: str, user: str) -> str:
        """Held (a lease, never confirmed) while one of the user's AI turns runs: the next
        waits for it, and then answers only what the first left unanswered."""
        return f"{self.prefix}airunning:{{{phone_number_id}:{user}}}"

    def ai_pending(self, phone_number_id: str, user: str) -> str:
        """The user's messages waiting for an AI turn, by wamid (``conversation.ai.pending``)."""
        return f"{self.prefix}aipending:{{{phone_number_id}:{user}}}"

    def ai_tokens_user(self, phone_number_id: str, user: str, day: str) -> str:
        """The model's tokens the user's turns used on ``day`` (UTC, ``YYYYMMDD``)."""
        return f"{self.prefix}aitokens:{{{phone_number_id}:{user}}}:{day}"

    def ai_tokens_number(self, phone_number_id: str, day: str) -> str:
        """The model's tokens all turns of a business number used on ``day`` (UTC)."""
        return f"{self.prefix}aitokens:{{{phone_number_id}}}:{day}"

    def history(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}hist:{{{phone_number_id}:{user}}}"

    def sent(self, phone_number_id: str, idempotency_key: str) -> str:
        return f"{self.prefix}sent:{{{phone_number_id}}}:{idempotency_key}"

    def pace(self, phone_number_id: str) -> str:
        return f"{self.prefix}pace:{{{phone_number_id}}}"

    def pace_user(self, phone_number_id: str, user: str) -> str:
        return f"{self.prefix}pace:{{{phone_number_id}}}:{user}"

    def event_seq(self, phone_number_id: str, user: str) -> str:
        """The last ``seq`` given to a conversation's events for a backend (``hiker events``)."""
        return f"{self.prefix}evseq:{{{phone_number_id}:{user}}}"

    def event_stamp(self, phone_number_id: str, user: str, event_id: str) -> str:
        """The ``seq`` given to the event ``event_id``, so that a redelivery keeps it."""
        return f"{self.prefix}evid:{{{phone_number_id}:{user}}}:{event_id}"

    def owned(self) -> str:
        """The conversations a person owns, scored by when that ends (``core.ownership``):
        what ``hiker_conversations_human_owned`` counts. A key of its own slot."""
        return f"{self.prefix}owned"

    def alias(self, phone_number_id: str, user: str) -> str:
        """The id a conversation once kept under ``user`` (a phone number) moved to."""
        return f"{self.prefix}alias:{{{phone_number_id}:{user}}}"

    def adoptions(self, phone_number_id: str, old_user: str, user: str) -> tuple[str, ...]:
        """(old name, name) of the conversation's keys that move from ``old_user`` to
        ``user`` (its state and its history), flattened, as ``ClaimStep.adopt`` takes them;
        none unless ``adopt_phone_keys``."""
        if not self.adopt_phone_keys or old_user == user:
            return ()
        return (
            self.conversation(phone_number_id, old_user),
            self.conversation(phone_number_id, user),
            self.history(phone_number_id, old_user),
            self.history(phone_number_id, user),
        )

    def legacy(self, key: str) -> str | None:
        """The name ``key`` had before hash tags, while adopting such keys (else None)."""
        if not self.adopt_legacy or not key.startswith(self.prefix):
            return None
        kind, _, tagged = key[len(self.prefix) :].partition(":")
        if not tagged.startswith("{") or "}" not in tagged:
            return None
        tag, _, rest = tagged[1:].partition("}")
        rest = rest.removeprefix(":")
        if kind not in _HAD_LEGACY_NAME or (kind == "pace" and rest):
            return None  # a kind of key that came with hash tags (per-user pacing included)
        if kind in _TAG_NOT_IN_LEGACY_NAME:
            return f"{self.prefix}{kind}:{rest}"
        return f"{self.prefix}{kind}:{tag}" + (f":{rest}" if rest else "")


# The kinds of key that existed before hash tags; history, reminders and per-user pacing came
# with them and have no other name.
_HAD_LEGACY_NAME: Final = frozenset({"claim", "conv", "followup", "sent", "pace"})
# Claims used to be named by the message or the idempotency key alone.
_TAG_NOT_IN_LEGACY_NAME: Final = frozenset({"claim", "sent"})

LegacyName = Callable[[str], "str | None"]
