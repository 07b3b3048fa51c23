"""Broadcasts end to end, on PostgreSQL, RabbitMQ, Redis, the sender and the Graph mock: each
recipient sent once across a SIGKILLed sender, a SIGKILLed api, a pause and two resumes; the
daily limit holding the rest for the next window (on the api's clock); opt-outs skipped; a
failed status, published as ingress publishes it, counted by its code."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import pytest

from hiker.api.app import OPS_APP, api
from hiker.core import kernel, topology
from hiker.core.contracts import Contract, MessageReceived, StatusError, StatusReceived
from hiker.core.settings import ApiSettings, load_settings
from tests.integration.api.conftest import (
    API_TOKEN,
    PostgresDatabase,
    RunningApi,
)
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory, ServiceProcess
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

# Each test asks for its database before its pipeline: the api stops before the database is
# dropped (fixtures end in reverse order).

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
TEMPLATE = {"name": "order_update", "language": "en_US"}
READER = "reader-token-0123456789abcdef"


class Served(Protocol):
    def url(self, path: str) -> str: ...


@dataclass
class ApiProcess:
    """``hiker api`` as a child process (it can be SIGKILLed), at a port of its own."""

    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Clock:
    """The api's clock: real time, plus what a test moved it on by."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


async def start(
    pipeline: Pipeline, database: PostgresDatabase, clock: Callable[[], float], **env: str
) -> RunningApi:
    settings = load_settings(
        ApiSettings,
        {
            **pipeline.env,
            "HIKER_API_TOKEN": API_TOKEN,
            "HIKER_DATABASE_URL": database.url,
            "HIKER_BROADCAST_TICK_SECONDS": "0.2",
            **env,
        },
    )
    app = kernel.create_app(api(clock=clock), settings)
    running = RunningApi(
        await pipeline.start("api", app), await pipeline.start("api-ops", app[OPS_APP])
    )

    async def ready() -> bool:
        async with pipeline.session.get(running.ops_url("/readyz")) as response:
            return response.status == 200

    await wait_until(ready, 30, "the api to be ready")
    return running


async def publish_inbound(amqp_url: str, routing_key: str, event: Contract) -> None:
    """As ingress publishes what Meta reported."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.INBOUND_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                event.to_bytes(),
                type=event.type_name(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key,
        )


async def create(
    pipeline: Pipeline, running: Served, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with pipeline.session.post(
        running.url("/v1/broadcasts"), json=body, headers={**AUTH, "Idempotency-Key": key}
    ) as response:
        assert response.status == 202, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def read(pipeline: Pipeline, running: Served, path: str) -> Any:
    async with pipeline.session.get(running.url(path), headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def act(pipeline: Pipeline, running: Served, broadcast_id: str, action: str) -> str:
    async with pipeline.session.post(
        running.url(f"/v1/broadcasts/{broadcast_id}/{action}"), headers=AUTH
    ) as response:
        assert response.status == 200, await response.text()
        state: str = (await response.json())["state"]
        return state


async def test_limit_opt_outs_and_a_failed_status(
    postgres_database: PostgresDatabase, make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    clock = Clock()
    running = await start(pipeline, postgres_database, clock, HIKER_MESSAGING_LIMIT="3")
    users = [f"1555000900{n}" for n in range(1, 6)]
    stop = MessageReceived(
        wamid="wamid.STOP1",
        phone_number_id=PHONE_NUMBER_ID,
        user=users[1],
        wa_id=users[1],
        message_type="text",
        text="  Stop ",
        timestamp=int(time.time()),
        received_at=time.time(),
    )
    await publish_inbound(amqp_url, "message.text", stop)

    async def opted_out() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await read(pipeline, running, "/v1/opt-outs"))["data"]
        return data

    (opt_out,) = await wait_until(opted_out, 20, "the opt-out recorded")
    assert (opt_out["user"], opt_out["word"]) == (users[1], "STOP")

    recipients = [{"to": user, "parameters": [f"Order {n}"]} for n, user in enumerate(users)]
    body = {
        "phone_number_id": PHONE_NUMBER_ID,
        "name": "december orders",
        "template": TEMPLATE,
        "recipients": recipients,
    }
    broadcast = (await create(pipeline, running, "orders-1", body))["id"]
    path = f"/v1/broadcasts/{broadcast}"

    async def counts_are(**expected: int) -> bool:
        counts = (await read(pipeline, running, path))["counts"]
        return all(counts[name] == value for name, value in expected.items())

    # Three users a day: the one who opted out is skipped (and not counted), the fifth waits.
    await wait_until(lambda: counts_are(accepted=3, skipped=1, queued=1), 30, "three sent")
    sent = await pipeline.sent()
    assert sorted(m["to"] for m in sent) == [users[0], users[2], users[3]]
    first = next(m for m in sent if m["to"] == users[0])
    assert first["payload"]["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Order 0"}]}
    ]
    await asyncio.sleep(1.0)  # five ticks: the limit still holds the fifth
    assert (await read(pipeline, running, path))["counts"]["queued"] == 1

    clock.ahead = 24 * 3600 + 61  # the window moved past the first sends' minute
    await wait_until(lambda: counts_are(accepted=4, queued=0), 30, "the fifth, a day later")
    assert (await read(pipeline, running, path))["state"] == "done"

    # Meta reports the first send failed, after Graph accepted it (as ingress publishes it).
    failed = StatusReceived(
        message_id=first["id"],
        phone_number_id=PHONE_NUMBER_ID,
        recipient_id=users[0],
        status="failed",
        errors=(StatusError(code=131049, title="Not delivered to keep the ecosystem healthy"),),
        received_at=time.time(),
        biz_opaque_callback_data=f"broadcast:{broadcast}:0",
    )
    await publish_inbound(amqp_url, "status.failed", failed)
    await wait_until(lambda: counts_are(failed=1, accepted=3), 20, "the failed status counted")
    assert (await read(pipeline, running, path))["failed_by_code"] == {"131049": 1}
    page = await read(pipeline, running, f"{path}/recipients?status=failed")
    assert page["data"] == [{"to": users[0], "status": "failed", "error_code": 131049}]

    async with pipeline.session.delete(
        running.url(f"/v1/opt-outs/{PHONE_NUMBER_ID}/{users[1]}"), headers=AUTH
    ) as response:
        assert response.status == 204
    assert await opted_out() == []


async def test_five_thousand_each_once_across_sigkills_and_a_pause(
    postgres_database: PostgresDatabase,
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
) -> None:
    rate = {"HIKER_SEND_RATE_PER_SECOND": "600", "HIKER_USER_SEND_INTERVAL_SECONDS": "0"}
    pipeline = await make_pipeline(services=("graph",), HIKER_GRAPH_TIMEOUT_SECONDS="2", **rate)
    sender = spawn("sender", pipeline.env)
    await sender.start()
    api = ApiProcess(free_port())
    api_env = {
        **pipeline.env,
        "HIKER_API_TOKEN": API_TOKEN,
        "HIKER_API_PORT": str(api.port),
        "HIKER_DATABASE_URL": postgres_database.url,
        "HIKER_BROADCAST_TICK_SECONDS": "0.2",
    }
    api_process = spawn("api", api_env)
    await api_process.start()
    users = [f"1666{n:07d}" for n in range(5000)]
    body = {
        "phone_number_id": PHONE_NUMBER_ID,
        "name": "five thousand",
        "template": TEMPLATE,
        "recipients": [{"to": user} for user in users],
    }
    broadcast = (await create(pipeline, api, "five-thousand", body))["id"]
    # The same request again is the same broadcast, and adds nothing.
    assert (await create(pipeline, api, "five-thousand", body))["id"] == broadcast
    path = f"/v1/broadcasts/{broadcast}"

    async def sent_at_least(count: int) -> bool:
        return len(await pipeline.sent()) >= count

    await wait_until(lambda: sent_at_least(800), 60, "the broadcast under way", every=0.3)
    await sender.kill()
    assert await act(pipeline, api, broadcast, "pause") == "paused"
    await spawn("sender", pipeline.env).start()
    held = (await read(pipeline, api, path))["counts"]["queued"]
    await asyncio.sleep(1.0)  # five ticks: paused, nothing more is handed
    assert (await read(pipeline, api, path))["counts"]["queued"] == held > 0
    assert await act(pipeline, api, broadcast, "resume") == "running"
    assert await act(pipeline, api, broadcast, "resume") == "running"

    # The api dies mid-tick as likely as not; another takes over from the database.
    await wait_until(lambda: sent_at_least(2500), 60, "the broadcast resumed", every=0.3)
    await api_process.kill()
    await spawn("api", api_env).start()

    async def settled() -> bool:
        view = await read(pipeline, api, path)
        counts = view["counts"]
        graph = len(await pipeline.sent())
        return (
            view["state"] == "done" and counts["queued"] == 0 and graph + counts["parked"] >= 5000
        )

    await wait_until(settled, 120, "every recipient sent or parked", every=1.0)
    await asyncio.sleep(1.0)
    times = Counter(m["to"] for m in await pipeline.sent())
    assert max(times.values()) == 1, times.most_common(3)
    # Only a send whose Graph call the kill interrupted is in doubt (Graph may or may not have
    # taken it): parked for a person, never sent again. Everyone else was sent.
    parked = await read(pipeline, api, f"{path}/recipients?status=parked&limit=100")
    assert len(parked["data"]) <= 64
    assert parked["next_cursor"] is None
    assert set(times) | {r["to"] for r in parked["data"]} == set(users)


async def test_csv_marketing_and_what_is_refused(
    postgres_database: PostgresDatabase, make_pipeline: PipelineFactory
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    running = await start(
        pipeline,
        postgres_database,
        Clock(),
        HIKER_MARKETING_MESSAGES_API="true",
        HIKER_BROADCAST_MAX_BYTES="2048",
        HIKER_API_TOKENS=f"{READER}:read",
    )
    query = (
        f"?phone_number_id={PHONE_NUMBER_ID}&name=promo&template=promo&language=en&marketing=true"
    )
    csv = b"to,first\n15550007001,Ana\n15550007002,Bo\n15550007001,Ana\n"
    headers = {**AUTH, "Idempotency-Key": "promo-csv", "Content-Type": "text/csv"}
    url = running.url("/v1/broadcasts" + query)
    async with pipeline.session.post(url, data=csv, headers=headers) as response:
        assert response.status == 202, await response.text()
        created = await response.json()
    assert (created["recipients"], created["duplicates"]) == (2, 1)
    # No HIKER_MESSAGING_LIMIT: Graph is asked; the mock does not say, so none applies.
    await wait_until(lambda: sent_count(pipeline, 2), 30, "both marketing sends")
    async with pipeline.session.get(pipeline.url("graph", "/_mock/requests")) as response:
        paths = [r["path"] for r in await response.json() if r["method"] == "POST"]
    assert paths == [f"/v23.0/{PHONE_NUMBER_ID}/marketing_messages"] * 2
    view = await read(pipeline, running, f"/v1/broadcasts/{created['id']}")
    assert view["marketing"] is True

    async def status_of(
        body: bytes, key: str, *, token: str = API_TOKEN, content_type: str = "text/csv"
    ) -> int:
        async with pipeline.session.post(
            url,
            data=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": key,
                "Content-Type": content_type,
            },
        ) as response:
            return response.status

    assert await status_of(csv + b"15550007003,Cy\n", "promo-csv") == 422  # the key, reused
    assert await status_of(b"phone\n1555\n", "promo-bad") == 422
    assert await status_of(b"{", "promo-json", content_type="application/json") == 422
    assert await status_of(b"to\n" + b"15550007004\n" * 200, "promo-big") == 413
    assert await status_of(csv, "promo-reader", token=READER) == 403
    async with pipeline.session.get(
        running.url("/v1/broadcasts/0123456789abcdef0123456789abcdef"), headers=AUTH
    ) as response:
        assert response.status == 404
    async with pipeline.session.get(
        running.url(f"/v1/broadcasts/{created['id']}/recipients?cursor=bm9wZQ"), headers=AUTH
    ) as response:
        assert response.status == 400


async def sent_count(pipeline: Pipeline, count: int) -> bool:
    return len(await pipeline.sent()) >= count
