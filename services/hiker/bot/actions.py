"""What a bot sends: the actions of ``hiker.core.actions``, ``Remind`` to be called back, and
``Handoff`` to leave the conversation to a person.

Each checks Meta's limits when built (a 4th button, a title over 20 characters), so a mistake
raises in the bot's code instead of coming back from Graph as a parked send.
"""

from __future__ import annotations

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
    Row,
    Section,
    Sticker,
    Template,
    Text,
    Video,
)
from hiker.core.requests import Handoff, Remind

__all__ = [
    "Audio",
    "Buttons",
    "Contact",
    "ContactEmail",
    "ContactName",
    "ContactPhone",
    "Contacts",
    "Document",
    "Handoff",
    "Image",
    "ListMenu",
    "Location",
    "Option",
    "Reaction",
    "Remind",
    "Row",
    "Section",
    "Sticker",
    "Template",
    "Text",
    "Video",
]
