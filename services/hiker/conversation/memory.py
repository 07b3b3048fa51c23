"""What a responder remembers of a conversation: its state, its recent history, and reminders.

``Conversation`` is handed to ``respond(message, conversation)`` and ``on_reminder(reminder,
conversation)``. ``conversation.state`` is a JSON-able dict of the responder's own, saved when
the call returns, atomically with the message's processing (``state.ConversationStore``);
``await conversation.history(limit)`` returns the last turns both ways, oldest first.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Protocol

from hiker.conversation.state import Turn


class HistorySource(Protocol):
    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]: ...


@dataclass(frozen=True)
class Reminder:
    """A reminder coming due: the ``Remind`` a responder returned, when the user stayed quiet."""

    key: str
    data: dict[str, Any]
    # The message it was set after (the user's, when a reply set it).
    after_wamid: str
    due_at: float


class Conversation:
    """One user's conversation with one business phone number, as a responder sees it."""

    def __init__(
        self,
        phone_number_id: str,
        user: str,
        state: dict[str, Any],
        history: HistorySource,
        *,
        window_open: bool = True,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.user = user
        # The responder's own, to read and change; saved when it returns.
        self.state: dict[str, Any] = copy.deepcopy(state)
        # Whether free-form messages may be sent (the 24-hour window since the user's last
        # message): outside it, only templates are sent.
        self.window_open = window_open
        self._original = _canonical(state)
        self._history = history

    async def history(self, limit: int = 20) -> list[Turn]:
        """The last ``limit`` messages of the conversation, both ways, oldest first."""
        return await self._history.history(self.phone_number_id, self.user, limit)

    @property
    def state_changed(self) -> bool:
        return _canonical(self.state) != self._original


def _canonical(state: dict[str, Any]) -> str:
    try:
        return json.dumps(state, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"conversation.state must hold only JSON values: {exc}") from None
