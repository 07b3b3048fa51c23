"""The shop example, tested the way a bot author tests a bot: with the harness."""

from __future__ import annotations

from pydantic import HttpUrl

from hiker.bot import Buttons, Image, ListMenu, Option, Reaction, Text
from hiker.examples.shop import bot
from hiker.testing import BotHarness

MENU = [
    Option(id="browse", title="Browse"),
    Option(id="cart", title="My cart"),
    Option(id="hours", title="Opening hours"),
]


async def test_menu_list_photo_cart_and_checkout() -> None:
    async with BotHarness(bot) as chat:
        welcome = Buttons(body="Welcome to the shop. What would you like?", options=MENU)
        assert await chat.send("Menu") == [welcome]
        [products] = await chat.tap("browse")
        assert isinstance(products, ListMenu)
        assert [s.title for s in products.sections] == ["Clothes", "Home"]
        assert await chat.choose("mug") == [
            Image(link=HttpUrl("https://example.com/shop/mug.jpg"), caption="Mug, 9 EUR"),
            Buttons(
                body="Shall I add it?",
                options=[
                    Option(id="add:mug", title="Add to cart"),
                    Option(id="browse", title="Keep looking"),
                ],
            ),
        ]
        await chat.tap("add:mug")
        added = await chat.tap("add:mug")
        assert added == [Buttons(body="Added: Mug. Cart: 2 items, 18 EUR.", options=MENU)]
        assert chat.state == {"cart": {"mug": 2}}
        assert await chat.tap("checkout") == [
            Text(body="Thank you! Order 1: Cart: 2 items, 18 EUR.")
        ]
        assert chat.state == {"orders": 1}


async def test_a_cart_left_behind_is_recalled_once_an_hour_later() -> None:
    async with BotHarness(bot, idle_timeout_seconds=6 * 3600) as chat:
        await chat.send("menu")
        await chat.tap("browse")
        await chat.choose("tee")
        await chat.tap("add:tee")
        assert await chat.advance(minutes=59) == []
        [recall] = await chat.advance(minutes=2)
        assert isinstance(recall, Buttons)
        assert recall.body == "You left something in your cart. Cart: 1 item, 15 EUR."
        assert await chat.advance(hours=4) == []


async def test_a_checkout_before_the_hour_cancels_the_recall() -> None:
    async with BotHarness(bot, idle_timeout_seconds=6 * 3600) as chat:
        await chat.tap("add:cap")
        await chat.tap("checkout")
        assert await chat.advance(hours=2) == []


async def test_a_photo_gets_a_thumbs_up_and_the_menu() -> None:
    async with BotHarness(bot) as chat:
        sent = await chat.send_image(b"\x89PNG", caption="like this?", mime_type="image/png")
        assert sent == [
            Reaction(emoji="👍", message_id=chat.last_id),
            Buttons(body="Nice photo! Have a look at ours:", options=MENU),
        ]
