"""A sign-up form over WhatsApp: state across turns, buttons, and durable reminders.

``HIKER_RESPONDER=hiker.examples.signup:make make run``, then, in another terminal::

    .venv/bin/hiker simulate --text "sign up"
    .venv/bin/hiker simulate --text "Ana"
    .venv/bin/hiker simulate --button plan-pro --text Pro

The form's step lives in ``conversation.state``, so it survives restarts and any replica may
answer the next message. A user who stops half-way gets a nudge after ten minutes and, near the
end of the 24-hour window, a last call; a new message from them cancels both. Anything else
goes to the rules file.
"""

from __future__ import annotations

from typing import Any

from hiker.bot import Buttons, Conversation, MessageReceived, Option, Remind, Reminder, Text
from hiker.conversation.responder import RuleBookResponder
from hiker.conversation.rulesfile import RuleSource

NUDGE_AFTER_SECONDS = 10 * 60
LAST_CALL_AFTER_SECONDS = 23 * 3600
PLANS = {"plan-free": "Free", "plan-pro": "Pro"}


class SignUp:
    def __init__(self, rules: RuleSource) -> None:
        self._rules = RuleBookResponder(rules)

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        form: dict[str, Any] = conversation.state.setdefault("signup", {})
        text = (message.text or "").strip()
        if text.casefold() == "sign up":
            form.clear()
            form["step"] = "name"
            return [Text(body="Welcome! What is your name?"), *_reminders()]
        step = form.get("step")
        if step == "name" and text:
            form.update(step="plan", name=text)
            options = [Option(id=key, title=title) for key, title in PLANS.items()]
            return [Buttons(body=f"Thanks, {text}. Which plan?", options=options), *_reminders()]
        if step == "plan" and message.reply_id in PLANS:
            form.update(step="done", plan=PLANS[message.reply_id])
            return Text(body=f"All set, {form['name']}: the {form['plan']} plan.")
        return await self._rules.respond(message, conversation)

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        if conversation.state.get("signup", {}).get("step") in (None, "done"):
            return None
        if reminder.key == "nudge":
            return Text(body="Still there? Your sign-up is waiting: just answer the question.")
        return Text(body="Last call: your sign-up closes soon.")


def _reminders() -> list[Remind]:
    return [
        Remind(after_seconds=NUDGE_AFTER_SECONDS, key="nudge"),
        Remind(after_seconds=LAST_CALL_AFTER_SECONDS, key="last-call"),
    ]


def make(rules: RuleSource) -> SignUp:
    return SignUp(rules)
