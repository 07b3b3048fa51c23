"""The sign-up example, as a bot author tests a bot: with the harness, no broker, no Redis."""

from __future__ import annotations

from hiker.bot import Buttons, Option, Text
from hiker.examples.signup import bot
from hiker.testing import BotHarness


async def test_the_form_asks_name_then_plan_and_remembers_both() -> None:
    async with BotHarness(bot) as chat:
        assert await chat.send("Sign up ") == [Text(body="Welcome! What is your name?")]
        plans = [Option(id="plan-free", title="Free"), Option(id="plan-pro", title="Pro")]
        assert await chat.send("Ana") == [Buttons(body="Thanks, Ana. Which plan?", options=plans)]
        assert await chat.tap("plan-pro") == [Text(body="All set, Ana: the Pro plan.")]
        assert chat.state == {"signup": {"step": "done", "name": "Ana", "plan": "Pro"}}


async def test_what_the_form_does_not_ask_goes_to_the_rules() -> None:
    async with BotHarness(bot) as chat:
        assert await chat.send("hello") == [Text(body="hello to you too")]
        assert await chat.tap("plan-pro") == []  # no form under way: the tap is no answer
        assert chat.state == {}


async def test_a_quiet_user_is_nudged_then_given_a_last_call_once_each() -> None:
    async with BotHarness(bot, idle_timeout_seconds=3 * 3600) as chat:
        await chat.send("sign up")
        assert await chat.advance(minutes=9) == []
        nudged = await chat.advance(minutes=2)
        assert [a.body for a in nudged if isinstance(a, Text)] == [
            "Still there? Your sign-up is waiting: just answer the question."
        ]
        assert await chat.advance(hours=2) == []
        followup = await chat.advance(hours=1)  # the idle follow-up at three hours
        assert followup == [Text(body="are you there")]
        last = await chat.advance(hours=20)
        assert last == [Text(body="Last call: your sign-up closes soon.")]


async def test_answering_cancels_the_nudges_of_the_question_before() -> None:
    async with BotHarness(bot) as chat:
        await chat.send("sign up")
        await chat.advance(minutes=5)
        await chat.send("Ana")
        await chat.tap("plan-free")
        sent = await chat.advance(days=1)
        assert Text(body="are you there") in sent  # the idle follow-up still runs
        assert not [a for a in sent if isinstance(a, Text) and "sign-up" in a.body]
