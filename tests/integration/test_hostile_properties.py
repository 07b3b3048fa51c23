"""Properties of the public webhook under any input, against an in-process ingress and the real
broker: never a 500, and nothing unsigned (or signed with another secret) reaches the broker.

Hypothesis runs in a worker thread, each example posting through the test's own event loop,
which keeps serving the in-process ingress meanwhile. Everywhere but ``make fuzz`` the tests
replay a fixed seed and the examples they ever found (tests/conftest.py's profile).

Memory is not measured here: this process holds Hypothesis's engine, pytest's captures and every
earlier test's leftovers beside the ingress, so its RSS says nothing about ingress's
(test_stalled_uploads measures ingress as a child process).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from hiker.core.signature import SIGNATURE_HEADER, sign
from hiker.tools.simulate import messages_change, text_message, webhook_body
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, metric_value
from tests.integration.webhooks import SECRET, hello_body, in_loop, ingress, poster, published

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]
__all__ = ["ingress"]  # the fixture, used by name

# How many examples, which seed and which database come from the profile (tests/conftest.py).
FUZZ = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# --- strategies ----------------------------------------------------------------------------

texts = st.text(
    st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    max_size=40,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=40,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A realistic value, or any JSON value in its place: types Meta never sends."""
    return st.one_of(value, value, json_values)


# Ids stay within AMQP's 255-byte property limit here: longer ones are a known bug with a test
# of its own (test_an_oversized_message_id_is_not_a_server_error), not something to rediscover.
wamids = st.one_of(
    st.just("wamid.HBgL"), st.text(max_size=60), st.text(st.sampled_from("é漢😀"), max_size=60)
)
messages = st.fixed_dictionaries(
    {
        "from": maybe(st.from_regex(r"\A\d{6,15}\Z")),
        "id": maybe(wamids),
        "timestamp": maybe(st.integers(0, 2**40).map(str)),
        "type": maybe(st.sampled_from(["text", "image", "interactive", "button", "unknown", ""])),
        "text": maybe(st.fixed_dictionaries({"body": texts})),
        "interactive": maybe(
            st.fixed_dictionaries(
                {"type": st.just("button_reply"), "button_reply": st.fixed_dictionaries({})}
            )
        ),
    },
    optional={"from_user_id": maybe(st.text(max_size=20))},
)
statuses = st.fixed_dictionaries(
    {
        "id": maybe(wamids),
        "status": maybe(st.sampled_from(["sent", "delivered", "read", "failed"])),
        "timestamp": maybe(st.integers(0, 2**40).map(str)),
        "recipient_id": maybe(st.from_regex(r"\A\d{6,15}\Z")),
        "errors": maybe(st.lists(st.fixed_dictionaries({"code": maybe(st.integers())}))),
    }
)
values = st.fixed_dictionaries(
    {
        "messaging_product": st.just("whatsapp"),
        "metadata": maybe(st.fixed_dictionaries({"phone_number_id": maybe(st.text(max_size=20))})),
        "contacts": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"wa_id": maybe(st.text(max_size=15)), "profile": maybe(st.just({"name": 1}))}
                ),
                max_size=3,
            )
        ),
        "messages": maybe(st.lists(messages, max_size=4)),
        "statuses": maybe(st.lists(statuses, max_size=3)),
        "errors": maybe(st.lists(st.fixed_dictionaries({"code": maybe(st.integers())}))),
    }
)
changes = st.fixed_dictionaries(
    {
        "field": maybe(st.sampled_from(["messages", "messages", "account_update", "a.b#c"])),
        "value": maybe(values),
    }
)
webhooks = st.fixed_dictionaries(
    {
        "object": maybe(st.just("whatsapp_business_account")),
        "entry": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": maybe(st.text(max_size=10)),
                        "changes": maybe(st.lists(changes, max_size=3)),
                    }
                ),
                max_size=3,
            )
        ),
    }
)


def to_json(value: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \\udXXX escapes: valid JSON syntax, hostile content.
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(to_json),
    webhooks.map(to_json),
)

# --- properties ----------------------------------------------------------------------------


async def test_unsigned_or_missigned_bodies_are_refused_and_never_published(
    ingress: Pipeline, amqp_url: str
) -> None:
    loop = asyncio.get_running_loop()
    post = poster(ingress)
    other_secret = b"not the app secret"

    @st.composite
    def bad_signatures(draw: st.DrawFn, body: bytes) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        kind = draw(st.sampled_from(["missing", "garbage", "other-secret", "other-body", "upper"]))
        if kind == "garbage":
            alphabet = st.characters(
                min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
            )
            headers.add(
                SIGNATURE_HEADER, draw(st.text(alphabet, min_size=1, max_size=100)).strip() or "x"
            )
        elif kind == "other-secret":
            headers.add(SIGNATURE_HEADER, sign(other_secret, body))
        elif kind == "other-body":
            headers.add(SIGNATURE_HEADER, sign(SECRET, body + b" "))
        elif kind == "upper":
            headers.add(SIGNATURE_HEADER, sign(SECRET, body).upper())
        if kind != "missing" and draw(st.booleans()):
            headers.add(SIGNATURE_HEADER, sign(other_secret, body))  # duplicated, still wrong
        return headers

    @FUZZ
    @given(data=st.data())
    def refused(data: st.DataObject) -> None:
        body = data.draw(st.one_of(bodies, st.just(hello_body())), label="body")
        headers = data.draw(bad_signatures(body), label="headers")
        status = in_loop(loop, post(body, headers))
        expected = 401 if SIGNATURE_HEADER not in headers else 403
        assert status == expected, status

    await asyncio.to_thread(refused)
    assert await published(amqp_url) == (0, 0)
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="accepted") == 0


def signed_update(**overrides: Any) -> bytes:
    """A one-message webhook with ``overrides`` in its message (and ``phone_number_id``)."""
    number = overrides.pop("phone_number_id", PHONE_NUMBER_ID)
    message = {**text_message("15550009986", "hello"), **overrides}
    return to_json(webhook_body(messages_change([message], phone_number_id=number)))


async def test_any_signed_body_is_answered_never_with_a_500(
    ingress: Pipeline, amqp_url: str
) -> None:
    loop = asyncio.get_running_loop()
    post = poster(ingress)

    # Failures found before, replayed on every run whatever the seed draws.
    @FUZZ
    @given(body=bodies)
    @example(body=signed_update(id="wamid." + "A" * 300))  # past AMQP's 255-byte short string
    @example(body=signed_update(text={"body": "\ud800"}))  # a lone surrogate, escaped in JSON
    @example(body=signed_update(type="\U00020000" * 64))  # a routing key over 255 bytes
    @example(body=signed_update(type="ñandú"))  # a routing key of non-ASCII letters
    @example(body=signed_update(phone_number_id="106540352242922/deregister?"))  # a Graph path
    @example(body=b'{"object": "\xff\xfe"}')  # not UTF-8
    @example(body=b"[" * 10_000 + b"]" * 10_000)  # past the parser's nesting limit
    def answered(body: bytes) -> None:
        status = in_loop(loop, post(body, {SIGNATURE_HEADER: sign(SECRET, body)}))
        # 200: published (or kept for inspection); 400: not JSON at all. Nothing else.
        assert status in {200, 400}, status

    await asyncio.to_thread(answered)
    # Still serving real traffic afterwards.
    assert await ingress.post(hello_body()) == 200
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="unavailable") == 0
    # Both paths were exercised: some bodies were read and published, some refused as not JSON.
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="accepted") > 0
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="malformed") > 0
