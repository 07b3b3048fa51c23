"""The conversation handle a handler gets beside the message, and what a reminder hands back.

- ``conv.state``: a JSON-able dict of the bot's own for this user and business number, saved
  when the handler returns, atomically with the message's processing.
- ``await conv.history(limit=20)``: the last messages both ways, oldest first (``Turn``).
- ``conv.window_open``: whether free-form messages may still be sent (Meta's 24-hour window);
  outside it only ``Template`` actions go out.
- ``conv.user``, ``conv.phone_number_id``: whose conversation it is.

``Reminder`` is a ``Remind`` coming due: its ``key``, its ``data``, when it was due.
"""

from __future__ import annotations

from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.state import Turn

__all__ = ["Conversation", "Reminder", "Turn"]
