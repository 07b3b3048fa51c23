"""``BotHarness``: a bot's conversation with one user, in memory, on a clock the test moves.

```python
async with BotHarness(bot) as chat:
    assert await chat.send("menu") == [Buttons(...)]
    await chat.tap("sizes")                          # a reply button, by its id
    await chat.send_image(b"...", caption="invoice 7")
    sent = await chat.advance(minutes=61)            # reminders and the idle follow-up
    assert chat.state["last_invoice"] == ...

async with BotHarness(bot, model=FakeModel("Hello!")) as chat:   # bot.ai on a scripted model
    assert await chat.send("hi") == [Text(body="Hello!")]
```

It drives conversation's own handlers (dedupe claims, state saved by compare-and-set, history,
idle timers, reminders in hops, the 24-hour window) on the in-memory stores of
``hiker.testing.fakes``, which the contract tests hold to the real Redis stores; each message is
a Meta-shaped webhook parsed by ingress's own code. Nothing opens a socket.
"""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry

from hiker.bot.routing import Bot
from hiker.conversation.ai.turn import TurnRunner
from hiker.conversation.handlers import ConversationHandlers
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Responder, as_responder
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Turn
from hiker.core.actions import AnyAction, Buttons, ListMenu, MarkRead
from hiker.core.ai_model import ModelClient
from hiker.core.contracts import MessageReceived, SendMessage, TimerScheduled
from hiker.core.keys import Keys
from hiker.ingress.webhook import route
from hiker.testing import inbound
from hiker.testing.fakes import Clock, InMemoryClaims, InMemoryConversations
from hiker.testing.media import InMemoryMedia
from hiker.tools.simulate import DEFAULT_PHONE_NUMBER_ID, messages_change, webhook_body

Actions = list[AnyAction]


class BotHarness:
    """One user talking to ``bot`` (a ``hiker.bot.Bot``, or any responder).

    Every ``send``/``tap``/``send_*`` returns the actions the bot sent in answer, in order;
    ``advance`` moves the clock and returns what the bot sent meanwhile. The settings are
    conversation's (``idle_timeout_seconds``, ``followup_text``, the rules file: the bot's
    own ``rules=`` unless ``rules_file`` is given).

    ``model`` (a ``hiker.testing.FakeModel``) is what ``bot.ai`` asks, with the bot's tools,
    ``system_prompt``, the last ``history_turns`` turns; voice notes are transcribed by it
    and images shown to it when ``vision``.
    """

    def __init__(
        self,
        bot: Bot | Responder,
        *,
        user: str = "15550001111",
        name: str = "Test User",
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        rules_file: Path | None = None,
        idle_timeout_seconds: float = 600.0,
        followup_text: str = "are you there",
        start: float = 1_700_000_000.0,
        model: ModelClient | None = None,
        system_prompt: str | None = None,
        history_turns: int = 20,
        vision: bool = False,
    ) -> None:
        self.user = user
        self.name = name
        self.phone_number_id = phone_number_id
        self.clock = Clock(start)
        self.rules = RuleSource(
            default_rulebook(followup_text, idle_timeout_seconds),
            rules_file or (bot.rules_file if isinstance(bot, Bot) else None),
        )
        self.conversations = InMemoryConversations()
        # What the user's media download from: ``msg.image.download()`` in a handler.
        self.media = InMemoryMedia()
        self._ai_bot = bot if isinstance(bot, Bot) and model is not None else None
        if self._ai_bot is not None and model is not None:
            runner = TurnRunner(
                model, tools=self._ai_bot.tools, media=self.media, vision=vision, transcribe=True
            )
            self._ai_bot.ai.attach(runner, system_prompt=system_prompt, history_turns=history_turns)
        self.registry = CollectorRegistry()
        self.handlers = ConversationHandlers(
            rules=self.rules,
            responder=(
                bot.with_rules(self.rules, self.media)
                if isinstance(bot, Bot)
                else as_responder(bot)
            ),
            conversations=self.conversations,
            claims=InMemoryClaims(self.clock, lease_seconds=30, done_ttl_seconds=7 * 86400),
            keys=Keys("hiker-test:"),
            send=self._send,
            schedule=self._schedule,
            metrics=ConversationMetrics(self.registry),
            clock=self.clock,
        )
        self._commands: list[SendMessage] = []
        # (fires at, order set, timer): a heap, as the wait queues hand timers back.
        self._waiting: list[tuple[float, int, TimerScheduled]] = []
        self._order = itertools.count()
        self._ids = itertools.count(1)
        # The id of the last message the user sent (what a reaction or a quote names).
        self.last_id: str | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The bot is a module's, shared by tests: the next harness brings its own model.
        if self._ai_bot is not None:
            self._ai_bot.ai.detach()

    @property
    def state(self) -> dict[str, Any]:
        """The conversation's state as last saved."""
        _, state = self.conversations.states.get(
            (self.phone_number_id, self.user), (0, {}, "", {})
        )[:2]
        return dict(state)

    @property
    def sent(self) -> Actions:
        """Everything the bot sent so far, in order."""
        return _actions(self._commands)

    async def history(self, limit: int = 50) -> list[Turn]:
        """The conversation's last turns both ways, oldest first."""
        return await self.conversations.history(self.phone_number_id, self.user, limit)

    @property
    def waiting(self) -> list[tuple[float, str | None]]:
        """The timers waiting: (seconds from now, reminder key or None for the follow-up)."""
        return sorted((at - self.clock(), t.reminder) for at, _, t in self._waiting)

    async def send(self, text: str, *, reply_to: str | None = None) -> Actions:
        """The user writes ``text`` (quoting the message ``reply_to``, a wamid, when given)."""
        raw = inbound.text(text)
        if reply_to is not None:
            raw["context"] = {"from": self.phone_number_id, "id": reply_to}
        return await self.receive(raw)

    async def tap(self, button_id: str, title: str | None = None) -> Actions:
        """The user taps the reply button ``button_id`` (its title: as the bot last sent it)."""
        return await self.receive(inbound.button_reply(button_id, title or self._title(button_id)))

    async def choose(self, row_id: str, title: str | None = None) -> Actions:
        """The user picks the list row ``row_id``."""
        return await self.receive(inbound.list_reply(row_id, title or self._title(row_id)))

    async def tap_template(self, payload: str, text: str | None = None) -> Actions:
        """The user taps a template's quick-reply button of ``payload``."""
        return await self.receive(inbound.template_button(payload, text or payload))

    async def send_image(
        self, data: bytes = b"image", *, caption: str | None = None, mime_type: str = "image/jpeg"
    ) -> Actions:
        return await self._media("image", data, mime_type, caption=caption)

    async def send_video(
        self, data: bytes = b"video", *, caption: str | None = None, mime_type: str = "video/mp4"
    ) -> Actions:
        return await self._media("video", data, mime_type, caption=caption)

    async def send_audio(
        self, data: bytes = b"audio", *, voice: bool = False, mime_type: str = "audio/ogg"
    ) -> Actions:
        return await self._media("audio", data, mime_type, voice=voice)

    async def send_voice(self, data: bytes = b"voice") -> Actions:
        return await self.send_audio(data, voice=True, mime_type="audio/ogg; codecs=opus")

    async def send_document(
        self,
        data: bytes = b"%PDF",
        *,
        filename: str = "file.pdf",
        caption: str | None = None,
        mime_type: str = "application/pdf",
    ) -> Actions:
        return await self._media("document", data, mime_type, caption=caption, filename=filename)

    async def send_sticker(self, data: bytes = b"sticker", *, animated: bool = False) -> Actions:
        return await self._media("sticker", data, "image/webp", animated=animated)

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
    ) -> Actions:
        return await self.receive(inbound.location(latitude, longitude, name, address))

    async def send_contact(self, name: str, phone: str) -> Actions:
        return await self.receive(inbound.contacts([(name, phone)]))

    async def react(self, emoji: str | None, *, to: str = "wamid.OUT1") -> Actions:
        """The user reacts to the business's message ``to`` (``emoji`` None: takes it off)."""
        return await self.receive(inbound.reaction(to, emoji))

    async def send_order(
        self,
        items: list[tuple[str, int, float, str]],
        *,
        catalog_id: str = "catalog",
        note: str | None = None,
    ) -> Actions:
        """The user sends a cart: (product retailer id, quantity, item price, currency)."""
        return await self.receive(inbound.order(catalog_id, items, note))

    async def receive(self, raw: dict[str, Any]) -> Actions:
        """The user sends ``raw``, a Meta message object of any kind (``system``,
        ``unsupported``...); its sender, id and time are filled in where missing."""
        message = {
            "from": self.user,
            "id": f"wamid.TEST{next(self._ids)}",
            "timestamp": str(int(self.clock())),
            **raw,
        }
        body = webhook_body(
            messages_change([message], phone_number_id=self.phone_number_id, name=self.name)
        )
        routed = route(body, received_at=self.clock())
        events = [r.event for r in routed] if isinstance(routed, list) else []
        messages = [e for e in events if isinstance(e, MessageReceived)]
        if len(messages) != 1:
            raise ValueError(f"not a message object ingress would accept: {raw!r}")
        [event] = messages
        self.last_id = event.wamid
        mark = len(self._commands)
        await self.handlers.on_message(event)
        return _actions(self._commands[mark:])

    async def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> Actions:
        """Let time pass: every timer due meanwhile fires, in due order, as its wait queue
        would hand it back. What the bot sent meanwhile, in order."""
        until = self.clock() + seconds + 60 * minutes + 3600 * hours + 86400 * days
        mark = len(self._commands)
        while self._waiting and self._waiting[0][0] <= until:
            fires_at, _, timer = heapq.heappop(self._waiting)
            self.clock.now = max(self.clock.now, fires_at)
            await self.handlers.on_timer_fired(timer)
        self.clock.now = until
        return _actions(self._commands[mark:])

    async def _media(self, kind: str, data: bytes, mime_type: str, **fields: Any) -> Actions:
        media_id = str(1_000_000_000 + next(self._ids))
        self.media.add(media_id, data)
        return await self.receive(
            inbound.media(kind, media_id, mime_type=mime_type, data=data, **fields)
        )

    def _title(self, choice_id: str) -> str:
        """The title the bot last gave the button or row ``choice_id``."""
        for command in reversed(self._commands):
            for action in reversed(command.actions):
                if isinstance(action, Buttons):
                    titles = {o.id: o.title for o in action.options}
                elif isinstance(action, ListMenu):
                    titles = {r.id: r.title for s in action.sections for r in s.rows}
                else:
                    continue
                if choice_id in titles:
                    return titles[choice_id]
        return choice_id

    async def _send(self, command: SendMessage) -> None:
        self._commands.append(command)

    async def _schedule(self, timer: TimerScheduled, delay_seconds: float) -> None:
        heapq.heappush(self._waiting, (self.clock() + delay_seconds, next(self._order), timer))


def _actions(commands: list[SendMessage]) -> Actions:
    """What ``commands`` say to the user (read receipts say nothing)."""
    return [a for c in commands for a in c.actions if not isinstance(a, MarkRead)]
