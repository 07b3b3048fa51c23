"""``hiker api`` over HTTP beside the whole pipeline (real RabbitMQ, Redis, and SQLite or
PostgreSQL): the history of a conversation with its statuses, sends from a backend once per
Idempotency-Key through the sender and the Graph mock, the token, the problems, and every
answer checked against the OpenAPI document it serves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hiker.api.app import OPS_APP
from hiker.api.app import create_app as create_api
from hiker.api.cursors import MessageCursor, encode
from hiker.core.settings import ApiSettings, load_settings
from hiker.tools.simulate import messages_change, webhook_body
from tests.integration.api.conftest import API_TOKEN, RunningApi, start_api
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory, metric_value
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
DOCUMENT_URI = "urn:hiker:openapi"


class Contract:
    """Validates bodies against the served document's schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        validate_openapi(document)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(DOCUMENT_URI, resource)

    def check(self, schema: str, body: Any) -> None:
        ref = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{schema}"}
        Draft202012Validator(ref, registry=self._registry).validate(body)


async def call(
    pipeline: Pipeline,
    api: RunningApi,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with pipeline.session.request(
        method, api.url(path), headers=AUTH if headers is None else headers, **kwargs
    ) as response:
        return response.status, await response.json(content_type=None)


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 15.0, what: str = "the condition"
) -> Any:
    return await wait_until(check, within, what)


async def contract_of(pipeline: Pipeline, api: RunningApi) -> Contract:
    async with pipeline.session.get(api.url("/v1/openapi.json"), headers=AUTH) as response:
        assert response.status == 200
        return Contract(await response.json())


async def history(pipeline: Pipeline, api: RunningApi, user: str, **params: str) -> Any:
    status, body = await call(
        pipeline, api, "GET", f"/v1/conversations/{PHONE_NUMBER_ID}/{user}/messages", params=params
    )
    assert status == 200, body
    return body


async def test_history_shows_both_directions_with_the_statuses_meta_reported(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline = await make_pipeline()
    api = await start_api(pipeline, database_url)
    contract = await contract_of(pipeline, api)
    user = "15550002001"
    wamid = await pipeline.say(user, "hello")
    (sent,) = list(await eventually(lambda: pipeline.sent(user), what="the reply"))

    async def both() -> Any:
        body = await history(pipeline, api, user)
        return body if len(body["data"]) == 2 else None

    body = await eventually(both, what="both messages recorded")
    contract.check("MessagePage", body)
    out, in_ = body["data"]
    assert (in_["id"], in_["direction"], in_["text"], in_["status"]) == (
        wamid, "in", "hello", "received"
    )  # fmt: skip
    assert (out["id"], out["direction"], out["text"], out["status"], out["kind"]) == (
        sent["id"], "out", "hello to you too", "accepted", "reply"
    )  # fmt: skip
    assert out["at"] > in_["at"]
    statuses = [
        {"id": sent["id"], "status": s, "timestamp": str(1_700_000_000 + n), "recipient_id": user}
        for n, s in enumerate(("sent", "delivered", "read"))
    ]
    # Twice, as Meta may: recorded once.
    for _ in range(2):
        assert await pipeline.post(webhook_body(messages_change(statuses=statuses))) == 200

    async def read() -> Any:
        body = await history(pipeline, api, user)
        return body if body["data"][0]["status"] == "read" else None

    body = await eventually(read, what="the read status")
    assert [s["status"] for s in body["data"][0]["statuses"]] == ["sent", "delivered", "read"]
    assert body["next_cursor"] is None

    status, conversations = await call(
        pipeline, api, "GET", "/v1/conversations", params={"phone_number_id": PHONE_NUMBER_ID}
    )
    assert status == 200
    contract.check("ConversationPage", conversations)
    (conversation,) = conversations["data"]
    assert (conversation["user"], conversation["message_count"]) == (user, 2)
    assert conversation["last_message"] == {
        "direction": "out", "type": "text", "text": "hello to you too"
    }  # fmt: skip

    async def repeats_seen() -> Any:
        metrics = await pipeline.metrics("api-ops")
        return metric_value(metrics, "hiker_api_records_duplicate_total", kind="status") == 3

    # The second webhook's statuses may still be on their way: each is found already there.
    await eventually(repeats_seen, what="the repeated statuses")
    metrics = await pipeline.metrics("api-ops")
    assert metric_value(metrics, "hiker_api_records_written_total", kind="status") == 3


async def test_a_failed_status_attaches_meta_error_and_pages_follow_the_cursor(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "ingress", "sender"))
    api = await start_api(pipeline, database_url)
    contract = await contract_of(pipeline, api)
    user = "15550002002"
    for n in range(5):
        await pipeline.say(user, f"message {n}")
    failed = {
        "id": "wamid.NOT-YET-RECORDED",
        "status": "failed",
        "timestamp": "1700000001",
        "recipient_id": user,
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    assert await pipeline.post(webhook_body(messages_change(statuses=[failed]))) == 200

    async def all_five() -> Any:
        return len((await history(pipeline, api, user, limit="100"))["data"]) == 5

    await eventually(all_five, what="five messages")
    texts: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await history(pipeline, api, user, **params)
        contract.check("MessagePage", body)
        texts.extend(item["text"] for item in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert texts == [f"message {n}" for n in reversed(range(5))]


async def test_the_same_idempotency_key_twice_sends_once_with_one_id(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    api = await start_api(pipeline, database_url)
    contract = await contract_of(pipeline, api)
    user = "15550002003"
    request = {
        "phone_number_id": PHONE_NUMBER_ID,
        "to": user,
        "buttons": {
            "body": "Pick",
            "options": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}],
        },
    }
    headers = {**AUTH, "Idempotency-Key": "order-42-confirmation"}
    first = await call(pipeline, api, "POST", "/v1/messages", json=request, headers=headers)
    second = await call(pipeline, api, "POST", "/v1/messages", json=request, headers=headers)
    assert first[0] == second[0] == 202, (first, second)
    contract.check("Accepted", first[1])
    assert first[1] == second[1]
    assert first[1]["status"] == "accepted"
    (sent,) = await eventually(lambda: pipeline.sent(user), what="the send")

    async def recorded() -> Any:
        body = await history(pipeline, api, user)
        return body if body["data"] and body["data"][0]["id"] == sent["id"] else None

    body = await eventually(recorded, what="the send recorded with Graph's id")
    (item,) = body["data"]
    assert (item["send_id"], item["kind"], item["type"], item["text"]) == (
        first[1]["id"], "api", "buttons", "Pick"
    )  # fmt: skip
    # Once Graph took it, a third request with the key sends nothing either.
    third = await call(pipeline, api, "POST", "/v1/messages", json=request, headers=headers)
    assert third == first
    await asyncio.sleep(0.5)
    assert len(await pipeline.sent(user)) == 1
    # The key with another request is refused.
    other = {**request, "text": "something else"}
    del other["buttons"]
    status, problem = await call(pipeline, api, "POST", "/v1/messages", json=other, headers=headers)
    assert status == 422
    contract.check("Problem", problem)
    assert "Idempotency-Key" in problem["error"]["message"]


@pytest.mark.parametrize(
    ("action", "named"),
    [
        (
            {
                "buttons": {
                    "body": "x",
                    "options": [{"id": str(n), "title": str(n)} for n in range(4)],
                }
            },
            "buttons.options: at most 3 (Meta's limit), not 4",
        ),
        (
            {"buttons": {"body": "x", "options": [{"id": "a", "title": "t" * 21}]}},
            "buttons.options.0.title: at most 20 characters (Meta's limit), not 21",
        ),
        ({"carousel": {}}, "carousel: unknown action"),
        ({"text": "a", "image": {"link": "https://example.com/a.jpg"}}, "exactly one action"),
        ({"reaction": {"emoji": "👍"}}, "reaction.message_id: is required"),
        (
            {"image": {"link": "http://example.com/a.jpg"}},
            "image.link: must be an https:// URL: Meta requires HTTPS",
        ),
    ],
)
async def test_a_bad_action_is_refused_naming_what_is_wrong(
    make_pipeline: PipelineFactory, tmp_path: Any, action: dict[str, Any], named: str
) -> None:
    pipeline = await make_pipeline(services=())
    api = await start_api(pipeline, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    contract = await contract_of(pipeline, api)
    body = {"phone_number_id": PHONE_NUMBER_ID, "to": "15550002004", **action}
    headers = {**AUTH, "Idempotency-Key": "k1"}
    status, problem = await call(pipeline, api, "POST", "/v1/messages", json=body, headers=headers)
    assert status == 422, problem
    contract.check("Problem", problem)
    assert named in problem["error"]["message"]
    assert problem["error"]["code"] == 100
    assert problem["error"]["error_data"]["fields"]


async def test_the_token_the_header_and_the_paging_are_checked(
    make_pipeline: PipelineFactory, tmp_path: Any
) -> None:
    pipeline = await make_pipeline(services=())
    api = await start_api(pipeline, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    contract = await contract_of(pipeline, api)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        for method, path in (("GET", "/v1/conversations"), ("POST", "/v1/messages")):
            status, problem = await call(pipeline, api, method, path, headers=headers)
            assert status == 401, (headers, path)
            contract.check("Problem", problem)
    send = {"phone_number_id": PHONE_NUMBER_ID, "to": "15550002005", "text": "hi"}
    status, problem = await call(pipeline, api, "POST", "/v1/messages", json=send)
    assert status == 400
    assert "Idempotency-Key" in problem["error"]["message"]
    # A cursor of the messages list is not one of the conversations list.
    foreign = encode(MessageCursor(1, 1))
    bad = (
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"cursor": "nope"},
        {"cursor": foreign},
    )
    for params in bad:
        status, problem = await call(pipeline, api, "GET", "/v1/conversations", params=params)
        assert status == 400, params
        contract.check("Problem", problem)
    status, page = await call(pipeline, api, "GET", "/v1/conversations")
    assert (status, page) == (200, {"data": [], "next_cursor": None})
    # The document too: it tells a stranger what there is to try.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, problem = await call(pipeline, api, "GET", "/v1/openapi.json", headers=headers)
        assert status == 401
        contract.check("Problem", problem)
    metrics = await pipeline.metrics("api-ops")
    assert (
        metric_value(
            metrics, "hiker_api_requests_total", route="GET /v1/conversations", status="401"
        )
        == 3
    )


async def test_without_its_database_the_api_answers_503_and_is_not_ready(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=())
    nowhere = f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/hiker"
    env = {**pipeline.env, "HIKER_API_TOKEN": API_TOKEN, "HIKER_DATABASE_URL": nowhere}
    app = create_api(load_settings(ApiSettings, env))
    api = RunningApi(
        await pipeline.start("api", app), await pipeline.start("api-ops", app[OPS_APP])
    )
    status, problem = await call(pipeline, api, "GET", "/v1/conversations")
    assert status == 503, problem
    assert problem["error"]["code"] == 2
    assert (await call(pipeline, api, "GET", "/v1/conversations", headers={}))[0] == 401
    async with pipeline.session.get(api.ops_url("/readyz")) as response:
        assert response.status == 503
        assert (await response.json())["checks"]["database"] is False
