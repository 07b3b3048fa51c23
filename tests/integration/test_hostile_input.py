"""The public webhook under hostile input, against an in-process ingress and the real broker.

What must hold whatever arrives: never a 500; nothing unsigned (or signed with another secret)
reaches the broker; bounded memory; a signed body replayed by an attacker (or by Meta) is
harmless. Property tests run Hypothesis in a worker thread, each example posting through the
test's own event loop, which keeps serving the in-process ingress meanwhile.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from hiker.core import topology
from hiker.core.signature import SIGNATURE_HEADER, sign
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import (
    APP_SECRET,
    Pipeline,
    PipelineFactory,
    metric_value,
    queue_depth,
    queued_contracts,
)
from tests.support import wait_for_metric

pytestmark = pytest.mark.integration

BODY_LIMIT = 1024 * 1024
SECRET = APP_SECRET.encode()
# Every property test and the memory test must stay within this much RSS growth.
RSS_GROWTH_LIMIT = 48 * 1024 * 1024
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def rss_bytes() -> int:
    """Resident set size of this process (which runs the ingress), from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def published(amqp_url: str) -> tuple[int, int]:
    return (
        await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE),
        await queue_depth(amqp_url, topology.INSPECT_QUEUE),
    )


async def wait_for_depth(amqp_url: str, queue: str, depth: int, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    current = await queue_depth(amqp_url, queue)
    while current < depth and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        current = await queue_depth(amqp_url, queue)
    return current


@pytest.fixture
async def ingress(make_pipeline: PipelineFactory) -> Pipeline:
    return await make_pipeline(services=("ingress",), HIKER_MAX_BODY_BYTES=str(BODY_LIMIT))


Post = Callable[..., Coroutine[Any, Any, int]]


def poster(pipeline: Pipeline) -> Post:
    async def post(
        body: bytes, headers: CIMultiDict[str] | dict[str, str] | None = None, **kwargs: Any
    ) -> int:
        # aiohttp wants large bodies as a stream (it warns otherwise); the bytes sent are the same.
        data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > 256 * 1024 else body
        async with pipeline.session.post(
            pipeline.webhook_url, data=data, headers=headers, **kwargs
        ) as response:
            await response.read()
            return response.status

    return post


def in_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, int]) -> int:
    """Run ``coroutine`` on the test's loop from Hypothesis's worker thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)


def hello_body(user: str = "15550009999") -> bytes:
    return encode(webhook_body(messages_change([text_message(user, "hello")])))


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

    before = rss_bytes()
    await asyncio.to_thread(refused)
    assert rss_bytes() - before < RSS_GROWTH_LIMIT
    assert await published(amqp_url) == (0, 0)
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="accepted") == 0


async def test_any_signed_body_is_answered_never_with_a_500(
    ingress: Pipeline, amqp_url: str
) -> None:
    loop = asyncio.get_running_loop()
    post = poster(ingress)

    @FUZZ
    @given(body=bodies)
    def answered(body: bytes) -> None:
        status = in_loop(loop, post(body, {SIGNATURE_HEADER: sign(SECRET, body)}))
        # 200: published (or kept for inspection); 400: not JSON at all. Nothing else.
        assert status in {200, 400}, status

    before = rss_bytes()
    await asyncio.to_thread(answered)
    assert rss_bytes() - before < RSS_GROWTH_LIMIT
    # Still serving real traffic afterwards.
    assert await ingress.post(hello_body()) == 200
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="unavailable") == 0
    # Both paths were exercised: some bodies were read and published, some refused as not JSON.
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="accepted") > 0
    assert metric_value(metrics, "hiker_webhooks_received_total", outcome="malformed") > 0


# --- specific hostile inputs ---------------------------------------------------------------


async def test_signature_header_variants(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    body = hello_body()
    valid = sign(SECRET, body)
    wrong = sign(b"another secret", body)

    def headers(*values: str) -> CIMultiDict[str]:
        return CIMultiDict((SIGNATURE_HEADER, value) for value in values)

    refused = [
        (headers(), 401),
        (headers(""), 401),
        (headers(wrong), 403),  # computed with another secret
        (headers(wrong, valid), 403),  # the first header is the one read
        (headers(valid.removeprefix("sha256=")), 403),
        (headers("sha1=" + valid.removeprefix("sha256=")), 403),
        (headers(valid.upper()), 403),
        (headers(valid[:-1]), 403),
        (headers(valid + "00"), 403),
        (headers("sha256=" + "é" * 64), 403),
        (headers("sha256=" + "0" * 4096), 403),
    ]
    for sent, expected in refused:
        assert await post(body, sent) == expected, list(sent.values())
    assert await published(amqp_url) == (0, 0)
    # Spaces around a valid digest are tolerated, as Meta's own samples sometimes carry them.
    assert await post(body, headers(f"  {valid} ")) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 1) == 1


async def test_deep_nesting_is_refused_as_malformed(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    depth = 10_000
    for body in (
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b'{"object":"whatsapp_business_account","entry":' + b"[" * depth + b"]" * depth + b"}",
    ):
        assert await post(body, {SIGNATURE_HEADER: sign(SECRET, body)}) == 400
        assert await post(body, {}) == 401
    # Nesting within the parser's limit is readable: kept for inspection, not a crash.
    nested: Any = "bottom"
    for _ in range(150):
        nested = [nested]
    change = {"field": "account_update", "value": {"deep": nested}}
    assert await ingress.post(webhook_body(change)) == 200
    assert await wait_for_depth(amqp_url, topology.INSPECT_QUEUE, 1) == 1
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 0


async def test_bodies_at_and_over_the_size_limit(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    template = encode(webhook_body(messages_change([text_message("15550009998", "PAD")])))
    padding = BODY_LIMIT - len(template) + len(b"PAD") - 1
    under = template.replace(b"PAD", b"x" * padding)
    assert len(under) == BODY_LIMIT - 1
    assert await post(under, {SIGNATURE_HEADER: sign(SECRET, under)}) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 1) == 1

    over = template.replace(b"PAD", b"x" * (padding + 2))
    assert await post(over, {SIGNATURE_HEADER: sign(SECRET, over)}) == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * (BODY_LIMIT // 2)

    # Without a Content-Length the limit still holds, counted as the body streams in.
    assert await post(chunks(), {SIGNATURE_HEADER: "sha256=00"}) == 413
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 1


async def test_a_batch_of_1000_updates_publishes_every_one(
    ingress: Pipeline, amqp_url: str
) -> None:
    users = [f"1555{n:07d}" for n in range(1000)]
    body = encode(webhook_body(messages_change([text_message(u, "hello") for u in users])))
    started = time.monotonic()
    assert await ingress.post(body) == 200
    assert time.monotonic() - started < 5
    # 200 is answered only after every confirm: the events are all there already (in bundles).
    queued = await queued_contracts(amqp_url, topology.CONVERSATION_INBOUND_QUEUE)
    assert sorted(event["user"] for event in queued) == users
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_events_published_total", kind="message") == 1000


async def test_non_utf8_and_unusual_content_types(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    for garbage in (b"\xff\xfe\x00\x01", b'{"object": "\xff\xfe"}', "{}".encode("utf-16")):
        assert await post(garbage, {SIGNATURE_HEADER: sign(SECRET, garbage)}) == 400
        assert await post(garbage, {"Content-Type": "application/json"}) == 401
    body = hello_body()
    signature = sign(SECRET, body)
    # The signature, not the declared type, decides: Meta signs the bytes it sends.
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ):
        assert await post(body, {"Content-Type": content_type}) == 401
        assert await post(body, {"Content-Type": content_type, SIGNATURE_HEADER: signature}) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 5) == 5


async def test_compressed_bodies_cannot_bypass_the_limit(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    bomb = gzip.compress(b"\x00" * (64 * BODY_LIMIT))  # 64 MiB of zeros in ~64 KiB
    before = rss_bytes()
    for _ in range(5):
        status = await post(bomb, {"Content-Encoding": "gzip", SIGNATURE_HEADER: "sha256=00"})
        # Ingress never inflates a body: the compressed bytes are checked and refused as they are.
        assert status == 403
    assert rss_bytes() - before < RSS_GROWTH_LIMIT
    assert await published(amqp_url) == (0, 0)


async def test_a_body_that_is_not_the_gzip_it_claims_is_not_a_server_error(
    ingress: Pipeline,
) -> None:
    post = poster(ingress)
    assert await post(b"not gzip", {"Content-Encoding": "gzip"}) in {400, 401}


async def test_memory_stays_bounded_under_large_hostile_bodies(
    ingress: Pipeline, amqp_url: str
) -> None:
    post = poster(ingress)
    large = b"[" + b"1," * (BODY_LIMIT // 2 - 2) + b"]"
    malformed = large[:-1]
    for _ in range(3):  # warm up allocator pools before measuring
        await post(large, {SIGNATURE_HEADER: "sha256=00"})
    before = rss_bytes()
    for _ in range(40):
        assert await post(large, {SIGNATURE_HEADER: "sha256=00"}) == 403
        assert await post(malformed, {SIGNATURE_HEADER: sign(SECRET, malformed)}) == 400
    assert rss_bytes() - before < RSS_GROWTH_LIMIT
    assert await published(amqp_url) == (0, 0)


async def test_hostile_handshake_queries_are_refused(ingress: Pipeline) -> None:
    url = ingress.webhook_url
    for query in (
        "",
        "hub.mode=subscribe",
        "hub.mode=subscribe&hub.verify_token=%ff%fe&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=x&hub.verify_token=y&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=%00&hub.challenge=" + "9" * 4000,
        "%zz=%&&&=",
    ):
        async with ingress.session.get(f"{url}?{query}") as response:
            assert response.status == 403, query


async def test_a_replayed_signed_body_replies_once(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    user = "15550009997"
    body = hello_body(user)
    for _ in range(3):  # captured once, posted again and again
        assert await pipeline.post(body) == 200
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await wait_for_metric(
        lambda: pipeline.metrics("conversation"), "hiker_duplicates_dropped_total", 2
    )
    assert await pipeline.texts(user) == ["hello to you too"]


async def test_an_oversized_message_id_is_not_a_server_error(
    ingress: Pipeline, amqp_url: str
) -> None:
    message = text_message("15550009996", "hello", wamid="wamid." + "A" * 300)
    assert await ingress.post(webhook_body(messages_change([message]))) in {200, 400}
