"""The record handler on an in-memory store: each event's record, duplicates counted apart,
and the recording lag measured from the event's own time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hiker.api import history
from hiker.api.metrics import ApiMetrics
from hiker.api.recording import RecordHandler
from hiker.core.contracts import (
    MessageReceived,
    MessageSent,
    SendParked,
    StatusReceived,
    WebhookErrorReceived,
)
from tests.fakes import Clock
from tests.support import metric_value


class InMemoryRecords:
    """The store's idempotency over sets: a key written once, a repeat writes nothing."""

    def __init__(self) -> None:
        self.written: list[object] = []
        self._keys: set[tuple[str, ...]] = set()

    def _once(self, key: tuple[str, ...], record: object) -> bool:
        if key in self._keys:
            return False
        self._keys.add(key)
        self.written.append(record)
        return True

    async def add_inbound(self, message: history.Inbound) -> bool:
        return self._once(("in", message.wamid), message)

    async def add_outbound(self, message: history.Outbound) -> bool:
        return self._once(("out", message.idempotency_key, message.wamid or ""), message)

    async def add_parked(self, send: history.Parked) -> bool:
        return self._once(("parked", send.idempotency_key), send)

    async def add_status(self, reported: history.Status) -> bool:
        return self._once(("status", reported.wamid, reported.status), reported)

    async def add_webhook_error(self, error: history.WebhookError) -> bool:
        return self._once(("error", error.phone_number_id, str(error.code)), error)


def handler() -> tuple[RecordHandler, InMemoryRecords, CollectorRegistry, Clock]:
    registry = CollectorRegistry()
    store = InMemoryRecords()
    clock = Clock(1_000.0)
    return RecordHandler(store, ApiMetrics(registry), clock=clock), store, registry, clock


def samples(registry: CollectorRegistry, name: str, **labels: str) -> float:
    from prometheus_client import generate_latest

    return metric_value(generate_latest(registry).decode(), name, **labels)


RECEIVED = MessageReceived(
    wamid="wamid.A", phone_number_id="1", user="155", message_type="text", text="hi",
    timestamp=999, received_at=998.0,
)  # fmt: skip


async def test_a_redelivered_event_is_counted_as_a_duplicate_and_written_once() -> None:
    record, store, registry, _ = handler()
    await record.message_received(RECEIVED)
    await record.message_received(RECEIVED)
    assert store.written == [history.inbound(RECEIVED)]
    assert samples(registry, "hiker_api_records_written_total", kind="message_in") == 1
    assert samples(registry, "hiker_api_records_duplicate_total", kind="message_in") == 1
    # Received two seconds before it was recorded.
    assert samples(registry, "hiker_api_recording_lag_seconds_sum") == 2.0


async def test_every_kind_of_event_reaches_its_record() -> None:
    record, store, registry, _ = handler()
    await record.message_sent(
        MessageSent(
            idempotency_key="reply:wamid.A",
            phone_number_id="1",
            to="155",
            kind="reply",
            correlation_id="wamid.A",
            action_type="text",
            text="yo",
            graph_message_id="wamid.B",
            sent_at=999.0,
        )
    )
    await record.status_received(
        StatusReceived(message_id="wamid.B", phone_number_id="1", status="read", received_at=999.5)
    )
    await record.send_parked(
        SendParked(
            idempotency_key="followup:wamid.A",
            phone_number_id="1",
            to="155",
            kind="followup",
            correlation_id="wamid.A",
            reason="permanent",
            graph_status="400",
            graph_code="131047",
            parked_at=999.0,
        )
    )
    await record.webhook_error(WebhookErrorReceived(code=131000, received_at=999.0))
    kinds = [type(r).__name__ for r in store.written]
    assert kinds == ["Outbound", "Status", "Parked", "WebhookError"]
    for kind in ("message_out", "status", "parked", "webhook_error"):
        assert samples(registry, "hiker_api_records_written_total", kind=kind) == 1
