"""The Python API for writing a bot: what a responder receives and what it returns.

```python
from hiker.bot import Buttons, Image, MessageReceived, Option, Text

class Shop:
    async def respond(self, message: MessageReceived):
        if message.reply_id == "sizes":          # the user tapped the "Sizes" button
            return Text(body="S, M, L")
        if (message.text or "").strip().lower() == "menu":
            sizes, hours = Option(id="sizes", title="Sizes"), Option(id="hours", title="Hours")
            return Buttons(body="What would you like?", options=[sizes, hours])
        return [Text(body="Here it is"), Image(link="https://example.com/a.jpg", caption="A")]

def make(rules):                                 # HIKER_RESPONDER=yourmodule:make
    return Shop()
```

A list of actions is sent in that order, each once, the next only after Graph accepted the one
before. Every action checks Meta's limits when it is built (a 4th button, a title over 20
characters), so a mistake shows in your code, not as a parked send.
"""

from __future__ import annotations

from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.rules import Reply
from hiker.conversation.state import Turn
from hiker.core.actions import (
    Audio,
    Buttons,
    Contact,
    ContactEmail,
    ContactName,
    ContactPhone,
    Contacts,
    Document,
    Image,
    ListMenu,
    Location,
    Option,
    Reaction,
    Remind,
    Row,
    Section,
    Sticker,
    Template,
    Text,
    Video,
)
from hiker.core.contracts import MessageReceived

__all__ = [
    "Audio",
    "Buttons",
    "Contact",
    "ContactEmail",
    "ContactName",
    "ContactPhone",
    "Contacts",
    "Conversation",
    "Document",
    "Image",
    "ListMenu",
    "Location",
    "MessageReceived",
    "Option",
    "Reaction",
    "Remind",
    "Reminder",
    "Reply",
    "Row",
    "Section",
    "Sticker",
    "Template",
    "Text",
    "Turn",
    "Video",
]
