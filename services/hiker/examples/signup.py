"""A sign-up form over WhatsApp: state across turns, buttons, and durable reminders.

``HIKER_BOT=hiker.examples.signup:bot make run``, then, in another terminal::

    .venv/bin/hiker simulate --text "sign up"
    .venv/bin/hiker simulate --text "Ana"
    .venv/bin/hiker simulate --button plan-pro --text Pro

The form's step lives in ``conv.state``, so it survives restarts and any replica may answer the
next message. A user who stops half-way gets a nudge after ten minutes and, near the end of the
24-hour window, a last call; a new message from them cancels both. Anything else goes to the
rules file. ``tests/unit/test_example_signup.py`` tests it with ``hiker.testing.BotHarness``.
"""

from __future__ import annotations

from typing import Any

from hiker.bot import (
    Bot,
    Buttons,
    Conversation,
    Message,
    Option,
    Remind,
    Reminder,
    Skip,
    Text,
    filters,
)

NUDGE_AFTER_SECONDS = 10 * 60
LAST_CALL_AFTER_SECONDS = 23 * 3600
PLANS = {"plan-free": "Free", "plan-pro": "Pro"}

bot = Bot()


def _form(conv: Conversation) -> dict[str, Any]:
    form: dict[str, Any] = conv.state.get("signup", {})
    return form


@bot.on_text("sign up")
async def start(msg: Message, conv: Conversation) -> Any:
    conv.state["signup"] = {"step": "name"}
    return [Text(body="Welcome! What is your name?"), *_reminders()]


@bot.on_button(*PLANS)
async def plan(msg: Message, conv: Conversation) -> Any:
    form = _form(conv)
    if form.get("step") != "plan" or msg.button_id is None:
        return Skip
    form.update(step="done", plan=PLANS[msg.button_id])
    return Text(body=f"All set, {form['name']}: the {form['plan']} plan.")


@bot.on_message(filters.text)
async def name(msg: Message, conv: Conversation) -> Any:
    form = _form(conv)
    given = (msg.text or "").strip()
    if form.get("step") != "name" or not given:
        return Skip  # not an answer to the form: the rules file answers it
    form.update(step="plan", name=given)
    options = [Option(id=key, title=title) for key, title in PLANS.items()]
    return [Buttons(body=f"Thanks, {given}. Which plan?", options=options), *_reminders()]


@bot.on_reminder()
async def nudge(reminder: Reminder, conv: Conversation) -> Any:
    if _form(conv).get("step") in (None, "done"):
        return None
    if reminder.key == "nudge":
        return Text(body="Still there? Your sign-up is waiting: just answer the question.")
    return Text(body="Last call: your sign-up closes soon.")


def _reminders() -> list[Remind]:
    return [
        Remind(after_seconds=NUDGE_AFTER_SECONDS, key="nudge"),
        Remind(after_seconds=LAST_CALL_AFTER_SECONDS, key="last-call"),
    ]
