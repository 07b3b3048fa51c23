"""``hiker api`` under odd and hostile input, on PostgreSQL (the stricter database: NUL in text
and integers past BIGINT are its errors): whatever arrives is answered with a 4xx, never a 500.

The property test runs Hypothesis in a worker thread, each example sent through the test's own
event loop, which keeps serving the in-process api meanwhile. It is derandomized: the same
examples every run, so CI is not a lottery.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from hiker.api.cursors import ConversationCursor, MessageCursor, encode
from tests.integration.api.conftest import API_TOKEN, PostgresDatabase, RunningApi, start_api
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
async def hostile(
    make_pipeline: PipelineFactory, postgres_database: PostgresDatabase
) -> tuple[Pipeline, RunningApi]:
    pipeline = await make_pipeline(services=())
    return pipeline, await start_api(pipeline, postgres_database.url)


def server_errors(metrics: str) -> float:
    """Requests answered 5xx, on any route."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "hiker_api_requests_total" and sample.labels["status"].startswith("5")
    )


async def raw_status(api: RunningApi, request: bytes) -> int:
    """Send ``request`` as bytes over a socket of its own (no client library re-encodes it) and
    return the answer's status."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def test_an_authorization_header_that_is_not_utf8_is_a_401(
    hostile: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, api = hostile
    for path in (b"/v1/conversations", b"/v1/openapi.json"):
        for value in (b"Bearer \xff\xfe\xfd", b"\xc3\x28 " + API_TOKEN.encode(), b"Bearer \x80"):
            request = (
                b"GET " + path + b" HTTP/1.1\r\nHost: api\r\nAuthorization: " + value
                + b"\r\nConnection: close\r\n\r\n"
            )  # fmt: skip
            assert await raw_status(api, request) == 401, (path, value)
    assert server_errors(await pipeline.metrics("api-ops")) == 0


def _deep(depth: int) -> str:
    return base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode().rstrip("=")


async def test_cursors_out_of_range_or_deep_are_a_400(hostile: tuple[Pipeline, RunningApi]) -> None:
    pipeline, api = hostile
    messages_path = f"/v1/conversations/{PHONE_NUMBER_ID}/15550003001/messages"
    bad = [
        ("/v1/conversations", encode(ConversationCursor(2**63, PHONE_NUMBER_ID, "1"))),
        ("/v1/conversations", encode(ConversationCursor(-(2**70), PHONE_NUMBER_ID, "1"))),
        ("/v1/conversations", encode(ConversationCursor(1, PHONE_NUMBER_ID, "1\x00"))),
        ("/v1/conversations", _deep(3000)),
        ("/v1/conversations", "A" * 5000),
        (messages_path, encode(MessageCursor(1, 2**64))),
        (messages_path, encode(MessageCursor(2**80, 1))),
        (messages_path, _deep(3000)),
    ]
    for path, cursor in bad:
        async with pipeline.session.get(
            api.url(path), params={"cursor": cursor}, headers=AUTH
        ) as response:
            assert response.status == 400, (path, cursor[:40], await response.text())
            body = await response.json()
            assert body["error"]["error_data"]["fields"][0]["field"] == "cursor"


async def test_nul_and_foreign_digits_are_refused_before_the_database(
    hostile: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, api = hostile
    paths = [
        ("/v1/conversations?phone_number_id=%00", 400),
        ("/v1/conversations?phone_number_id=%D9%A1%D9%A2", 400),  # Arabic-Indic digits
        (f"/v1/conversations/{PHONE_NUMBER_ID}/1%00/messages", 400),
        ("/v1/conversations/1%002/1/messages", 400),
        ("/v1/conversations?limit=%C2%B2", 400),  # "²": a digit to isdigit, not to int
        ("/v1/conversations?limit=" + "9" * 5000, 400),  # past int()'s 4,300 digits
    ]
    for path, expected in paths:
        async with pipeline.session.get(api.url("/").rstrip("/") + path, headers=AUTH) as response:
            assert response.status == expected, (path, await response.text())
    send = {"phone_number_id": PHONE_NUMBER_ID, "to": "15550003002", "text": "a\x00b"}
    headers = {**AUTH, "Idempotency-Key": "nul-1"}
    async with pipeline.session.post(api.url("/v1/messages"), json=send, headers=headers) as r:
        assert r.status == 422, await r.text()
    send = {"phone_number_id": "١٢٣", "to": "15550003002", "text": "hi"}
    async with pipeline.session.post(api.url("/v1/messages"), json=send, headers=headers) as r:
        assert r.status == 422, await r.text()


# --- any request, on every route -------------------------------------------------------------

# Values that broke an edge before, drawn often: NUL, digits of other scripts, numbers past
# BIGINT, a lone surrogate, a percent sign.
EDGES = ("\x00", "1\x00", "١٢٣", "²", "9" * 80, str(2**64), "-1", "%", "\ud800", " ")
texts = st.one_of(
    st.sampled_from(EDGES),
    st.text(
        st.characters()
        | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
        max_size=30,
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
actions = st.fixed_dictionaries(
    {"phone_number_id": st.one_of(st.just(PHONE_NUMBER_ID), json_values), "to": json_values},
    optional={
        "text": json_values,
        "image": st.fixed_dictionaries({"link": texts}, optional={"caption": json_values}),
        "buttons": json_values,
        "template": json_values,
    },
)
segments = st.one_of(st.just(PHONE_NUMBER_ID), st.from_regex(r"\A\d{1,80}\Z"), texts)
cursors = st.one_of(
    texts,
    st.builds(
        lambda key: base64.urlsafe_b64encode(json.dumps(key).encode()).decode(),
        st.lists(json_values, max_size=5),
    ),
    st.builds(
        lambda a, n, u: encode(ConversationCursor(a, n, u)),
        st.integers(-(2**70), 2**70),
        texts,
        texts,
    ),
)
queries = st.dictionaries(
    st.sampled_from(["limit", "cursor", "phone_number_id", "other"]),
    st.one_of(texts, cursors, st.integers(-(2**70), 2**70).map(str)),
    max_size=4,
)


def _quoted(segment: str) -> str:
    return quote(segment.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None]:
    route = draw(st.sampled_from(["conversations", "messages", "send", "openapi", "nowhere"]))
    headers = dict(AUTH)
    body: bytes | None = None
    if route == "conversations":
        method, path = "GET", "/v1/conversations"
    elif route == "messages":
        number, user = draw(segments), draw(segments)
        method, path = "GET", f"/v1/conversations/{_quoted(number)}/{_quoted(user)}/messages"
    elif route == "send":
        method, path = "POST", "/v1/messages"
        # Any character a client library lets through a header (no control characters).
        header_text = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40)
        long_keys = st.from_regex(r"\A[a-z-]{1,300}\Z")
        headers["Idempotency-Key"] = draw(st.one_of(header_text, long_keys))
        sent, ascii = draw(st.one_of(actions, json_values)), draw(st.booleans())
        body = draw(
            st.one_of(
                st.just(json.dumps(sent, ensure_ascii=ascii).encode("utf-8", "surrogatepass")),
                st.binary(max_size=60),
            )
        )
    elif route == "openapi":
        method, path = draw(st.sampled_from(["GET", "POST"])), "/v1/openapi.json"
    else:
        method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
        path = f"/v1/{_quoted(draw(texts))}"
    query = draw(queries)
    if query:
        path += "?" + "&".join(f"{k}={_quoted(v)}" for k, v in query.items())
    return method, path, headers, body


async def test_no_request_on_any_route_is_answered_with_a_500(
    hostile: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, api = hostile
    loop = asyncio.get_running_loop()
    base = api.url("/").rstrip("/")

    async def send(method: str, path: str, headers: dict[str, str], body: bytes | None) -> int:
        async with pipeline.session.request(
            method, base + path, headers=headers, data=body, skip_auto_headers=["Content-Type"]
        ) as response:
            await response.read()
            return response.status

    def in_loop(coroutine: Coroutine[Any, Any, int]) -> int:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    @FUZZ
    @given(request=requests())
    # What it found before (kept, so that a change of strategies cannot lose them).
    @example(request=("GET", f"/v1/conversations/{PHONE_NUMBER_ID}/%00/messages", AUTH, None))
    @example(request=("GET", "/v1/conversations?phone_number_id=%00", AUTH, None))
    @example(request=("GET", "/v1/conversations?limit=%C2%B2", AUTH, None))
    def answered(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        status = in_loop(send(*request))
        assert status < 500, (status, request)

    await asyncio.to_thread(answered)
    assert server_errors(await pipeline.metrics("api-ops")) == 0
