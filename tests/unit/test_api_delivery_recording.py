"""What the api counts of each status beyond recording it: a failure by Meta's code once per
message, a price once per message whichever status carried it; and a template's change."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from hiker.api import history, templates
from hiker.api.metrics import ApiMetrics
from hiker.api.recording import RecordHandler
from hiker.core.contracts import (
    StatusError,
    StatusPricing,
    StatusReceived,
    TemplateQualityChanged,
    TemplateStatusChanged,
)
from tests.fakes import Clock
from tests.support import metric_value
from tests.unit.test_api_recording import InMemoryRecords


class InMemoryDelivery:
    def __init__(self) -> None:
        self.prices: dict[str, history.Price] = {}
        self.templates: list[templates.TemplateChange] = []

    async def add_price(self, price: history.Price) -> bool:
        return self.prices.setdefault(price.wamid, price) is price

    async def add_template(self, change: templates.TemplateChange) -> bool:
        self.templates.append(change)
        return True


class World:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.delivery = InMemoryDelivery()
        self.gauge_refreshes = 0

        async def refreshed() -> None:
            self.gauge_refreshes += 1

        self.handler = RecordHandler(
            InMemoryRecords(),
            ApiMetrics(self.registry),
            delivery=self.delivery,
            templates_changed=refreshed,
            clock=Clock(2_000.0),
        )

    def value(self, name: str, **labels: str) -> float:
        return metric_value(generate_latest(self.registry).decode(), name, **labels)


PRICING = StatusPricing(pricing_model="PMP", type="regular", category="marketing")


def status(state: str, **fields: object) -> StatusReceived:
    return StatusReceived.model_validate(
        {
            "message_id": "wamid.OUT1",
            "phone_number_id": "100000000000001",
            "recipient_id": "15550001111",
            "status": state,
            "received_at": 1_999.0,
            **fields,
        }
    )


async def test_a_price_repeated_on_each_status_is_counted_once() -> None:
    world = World()
    for state in ("sent", "delivered", "read", "delivered"):
        await world.handler.status_received(status(state, pricing=PRICING))
    assert world.value("hiker_messages_billed_total", category="marketing", type="regular") == 1
    assert world.delivery.prices["wamid.OUT1"].charged


async def test_a_failure_is_counted_once_by_metas_code() -> None:
    world = World()
    failed = status("failed", errors=(StatusError(code=131049, title="not delivered"),))
    await world.handler.status_received(failed)
    await world.handler.status_received(failed)  # Meta's redelivery
    assert world.value("hiker_messages_failed_total", code="131049") == 1
    assert world.value("hiker_messages_billed_total") == 0


async def test_a_template_change_is_recorded_and_shown_at_once() -> None:
    world = World()
    paused = TemplateStatusChanged(
        template_id="1", name="order_update", language="en_US", event="PAUSED",
        changed_at=1_000.0, received_at=1_999.0,
    )  # fmt: skip
    quality = TemplateQualityChanged(
        template_id="1", name="order_update", language="en_US", new_quality="RED",
        changed_at=1_000.5, received_at=1_999.0,
    )  # fmt: skip
    await world.handler.template_changed(paused)
    await world.handler.template_changed(quality)
    assert [(c.aspect, c.value, c.at_us) for c in world.delivery.templates] == [
        ("status", "PAUSED", 1_000_000_000),
        ("quality", "RED", 1_000_500_000),
    ]
    assert world.gauge_refreshes == 2
    assert world.value("hiker_api_records_written_total", kind="template") == 2


def row(status: str | None, template_id: str = "1") -> templates.TemplateRow:
    return templates.TemplateRow(
        template_id, None, "order_update", "en_US", status, None, None, None, None, None, None, 0
    )


def test_the_template_metric_shows_each_current_status_and_forgets_the_ones_left() -> None:
    registry = CollectorRegistry()
    gauge = ApiMetrics(registry).templates
    templates.show(gauge, [row("PAUSED"), row(None, "2")])
    page = generate_latest(registry).decode()
    assert metric_value(page, "hiker_template_status", language="en_US", status="PAUSED") == 1
    templates.show(gauge, [row("APPROVED")])
    page = generate_latest(registry).decode()
    assert metric_value(page, "hiker_template_status", status="PAUSED") == 0
    assert metric_value(page, "hiker_template_status", status="APPROVED") == 1
