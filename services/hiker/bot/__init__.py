"""The SDK for writing a bot: routes and filters, typed messages, actions, reminders.

```python
from hiker.bot import Bot, Buttons, Option, Remind, Text, filters

bot = Bot(rules="rules.yaml")            # what no handler takes falls to the rules file

@bot.on_text("menu")                     # exact, trimmed, any case; also regex= / startswith=
async def menu(msg, conv):
    return Buttons(body="What would you like?", options=[Option(id="sizes", title="Sizes")])

@bot.on_button("sizes")
async def sizes(msg, conv):
    return Text(body="S, M, L")

@bot.on_message(filters.image & filters.caption_contains("invoice"))
async def invoice(msg, conv):
    data = await msg.image.download()    # bytes (also .save(path)); raises a MediaError
    conv.state["last_invoice"] = msg.image.sha256
    return [Text(body="Got it"), Remind(after_seconds=3600, key="check")]

@bot.on_reminder("check")
async def check(reminder, conv):
    return Text(body="Did the invoice go through?")

@bot.tool                                # the model may call it (HIKER_AI_*, docs/ai.md)
async def order_status(order: str) -> dict:
    '''The status of an order, by its number.'''
    return {"order": order, "status": "shipped"}

@bot.on_text(startswith="order")
async def order(msg, conv):                 # the model answers, with context of the handler's
    return await bot.ai.answer(msg, conv, extra_context="Orders ship within 2 days.")
```

Run it with ``HIKER_BOT=yourmodule:bot``; test it with ``hiker.testing.BotHarness``. A list of
actions is sent in that order, each once, the next only after Graph accepted the one before.
The messages are views of the SDK's own (``hiker.bot.messages``), not the broker's events.
"""

from __future__ import annotations

from hiker.bot import filters
from hiker.bot.actions import (
    Audio,
    Buttons,
    Contact,
    ContactEmail,
    ContactName,
    ContactPhone,
    Contacts,
    Document,
    Handoff,
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
from hiker.bot.ai import AINotConfigured
from hiker.bot.conversation import Conversation, Reminder, Turn
from hiker.bot.filters import Filter
from hiker.bot.messages import (
    CallPermission,
    ContactCard,
    Context,
    FlowReply,
    Media,
    Message,
    MetaError,
    Notice,
    Order,
    OrderItem,
    Place,
    Reacted,
    Referral,
    Tap,
    User,
)
from hiker.bot.routing import Bot, Skip, load_bot
from hiker.conversation.ai.tools import ToolContext
from hiker.core.media import (
    MediaError,
    MediaExpired,
    MediaMismatch,
    MediaTooLarge,
    MediaUnavailable,
)

__all__ = [
    "AINotConfigured",
    "Audio",
    "Bot",
    "Buttons",
    "CallPermission",
    "Contact",
    "ContactCard",
    "ContactEmail",
    "ContactName",
    "ContactPhone",
    "Contacts",
    "Context",
    "Conversation",
    "Document",
    "Filter",
    "FlowReply",
    "Handoff",
    "Image",
    "ListMenu",
    "Location",
    "Media",
    "MediaError",
    "MediaExpired",
    "MediaMismatch",
    "MediaTooLarge",
    "MediaUnavailable",
    "Message",
    "MetaError",
    "Notice",
    "Option",
    "Order",
    "OrderItem",
    "Place",
    "Reacted",
    "Reaction",
    "Referral",
    "Remind",
    "Reminder",
    "Row",
    "Section",
    "Skip",
    "Sticker",
    "Tap",
    "Template",
    "Text",
    "ToolContext",
    "Turn",
    "User",
    "Video",
    "filters",
    "load_bot",
]
