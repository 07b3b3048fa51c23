"""A small shop over WhatsApp: a menu of buttons, a list of products, a photo, a cart kept in the
conversation's state, and a reminder about a cart left behind.

``HIKER_BOT=hiker.examples.shop:bot make run``, then, in another terminal::

    .venv/bin/hiker simulate --text menu
    .venv/bin/hiker simulate --button browse --text Browse

The cart lives in ``conv.state``: it survives restarts, and any replica answers the next
message. An hour after the last thing put in the cart, a user who has not checked out gets one
reminder (a new message from them moves it). ``tests/unit/test_example_shop.py`` tests it with
``hiker.testing.BotHarness``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import HttpUrl

from hiker.bot import (
    Bot,
    Buttons,
    Conversation,
    Image,
    ListMenu,
    Message,
    Option,
    Reaction,
    Remind,
    Reminder,
    Row,
    Section,
    Text,
    filters,
)

CART_REMINDER_SECONDS = 3600


@dataclass(frozen=True)
class Product:
    title: str
    price: int  # euros
    photo: HttpUrl
    shelf: str


PRODUCTS = {
    "tee": Product("T-shirt", 15, HttpUrl("https://example.com/shop/tee.jpg"), "Clothes"),
    "cap": Product("Cap", 12, HttpUrl("https://example.com/shop/cap.jpg"), "Clothes"),
    "mug": Product("Mug", 9, HttpUrl("https://example.com/shop/mug.jpg"), "Home"),
}
ADD = {f"add:{key}": key for key in PRODUCTS}

bot = Bot()


@bot.on_text("menu")
async def menu(msg: Message, conv: Conversation) -> Any:
    return _menu("Welcome to the shop. What would you like?")


@bot.on_button("browse")
async def browse(msg: Message, conv: Conversation) -> Any:
    shelves: dict[str, list[Row]] = {}
    for key, product in PRODUCTS.items():
        row = Row(id=key, title=product.title, description=f"{product.price} EUR")
        shelves.setdefault(product.shelf, []).append(row)
    sections = [Section(title=shelf, rows=rows) for shelf, rows in shelves.items()]
    return ListMenu(body="Our products", button="Products", sections=sections)


@bot.on_button(*PRODUCTS)
async def show(msg: Message, conv: Conversation) -> Any:
    assert msg.button_id is not None
    product = PRODUCTS[msg.button_id]
    add = Option(id=f"add:{msg.button_id}", title="Add to cart")
    return [
        Image(link=product.photo, caption=f"{product.title}, {product.price} EUR"),
        Buttons(body="Shall I add it?", options=[add, Option(id="browse", title="Keep looking")]),
    ]


@bot.on_button(*ADD)
async def add(msg: Message, conv: Conversation) -> Any:
    assert msg.button_id is not None
    key = ADD[msg.button_id]
    cart: dict[str, int] = conv.state.setdefault("cart", {})
    cart[key] = cart.get(key, 0) + 1
    return [
        _menu(f"Added: {PRODUCTS[key].title}. {_summary(cart)}"),
        Remind(after_seconds=CART_REMINDER_SECONDS, key="cart"),
    ]


@bot.on_button("cart")
async def show_cart(msg: Message, conv: Conversation) -> Any:
    cart = conv.state.get("cart", {})
    if not cart:
        return _menu("Your cart is empty.")
    return Buttons(body=_summary(cart), options=[Option(id="checkout", title="Check out")])


@bot.on_button("checkout")
async def checkout(msg: Message, conv: Conversation) -> Any:
    cart = conv.state.pop("cart", {})
    if not cart:
        return _menu("Your cart is empty.")
    conv.state["orders"] = conv.state.get("orders", 0) + 1
    return Text(body=f"Thank you! Order {conv.state['orders']}: {_summary(cart)}")


@bot.on_button("hours")
async def hours(msg: Message, conv: Conversation) -> Any:
    return Text(body="We answer every day, 9:00 to 18:00.")


@bot.on_message(filters.image)
async def photo(msg: Message, conv: Conversation) -> Any:
    return [Reaction(emoji="👍"), _menu("Nice photo! Have a look at ours:")]


@bot.on_reminder("cart")
async def left_behind(reminder: Reminder, conv: Conversation) -> Any:
    cart = conv.state.get("cart", {})
    if not cart:
        return None
    return Buttons(
        body=f"You left something in your cart. {_summary(cart)}",
        options=[Option(id="checkout", title="Check out"), Option(id="browse", title="Browse")],
    )


def _menu(body: str) -> Buttons:
    return Buttons(
        body=body,
        options=[
            Option(id="browse", title="Browse"),
            Option(id="cart", title="My cart"),
            Option(id="hours", title="Opening hours"),
        ],
    )


def _summary(cart: dict[str, int]) -> str:
    items = sum(cart.values())
    total = sum(PRODUCTS[key].price * count for key, count in cart.items())
    return f"Cart: {items} item{'s' if items != 1 else ''}, {total} EUR."
