"""The Graph mock's status webhooks read by ingress as Meta's: callback data, pricing, errors."""

from __future__ import annotations

import pytest

from hiker.core.contracts import StatusPricing, StatusReceived
from hiker.core.settings import ConfigError, GraphMockSettings, load_settings
from hiker.graphmock.statuses import fails_later, status_body
from hiker.ingress.webhook import Unclassified, route

TEMPLATE = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "15550990001",
    "type": "template",
    "template": {"name": "spring_promo", "language": {"code": "en_US"}},
    "biz_opaque_callback_data": "api:snd_1",
}


def read(body: dict[str, object]) -> StatusReceived:
    result = route(body, received_at=1.0)
    assert not isinstance(result, Unclassified)
    (item,) = result
    assert isinstance(item.event, StatusReceived)
    return item.event


def test_a_sent_status_carries_the_callback_data_and_the_price_meta_would() -> None:
    sent = read(status_body("100000000000001", "wamid.MOCK1", TEMPLATE, "sent", now=5.0))
    assert (sent.message_id, sent.status, sent.recipient_id) == (
        "wamid.MOCK1",
        "sent",
        "15550990001",
    )
    assert sent.biz_opaque_callback_data == "api:snd_1"
    assert sent.pricing == StatusPricing(
        billable=True, pricing_model="PMP", type="regular", category="marketing"
    )
    text = {**TEMPLATE, "type": "text", "text": {"body": "hi"}}
    delivered = read(status_body("100000000000001", "wamid.MOCK2", text, "delivered"))
    assert delivered.pricing is not None
    assert (delivered.pricing.type, delivered.pricing.category) == (
        "free_customer_service",
        "service",
    )


def test_a_failed_status_carries_metas_error_and_no_price() -> None:
    failed = read(status_body("100000000000001", "wamid.MOCK1", TEMPLATE, "failed", code=131049))
    assert failed.pricing is None
    (error,) = failed.errors
    assert error.code == 131049
    assert error.details == "Graph mock: failed status 131049"


def test_only_the_reserved_range_fails_later() -> None:
    assert fails_later("15550990001")
    assert not fails_later("15550002001")
    assert not fails_later("155509900011")


def test_statuses_without_the_app_secret_refuse_to_start_naming_it() -> None:
    with pytest.raises(ConfigError, match="HIKER_APP_SECRET"):
        load_settings(
            GraphMockSettings, {"HIKER_GRAPH_MOCK_WEBHOOK_URL": "http://127.0.0.1/webhook"}
        )
    settings = load_settings(
        GraphMockSettings,
        {"HIKER_GRAPH_MOCK_WEBHOOK_URL": "http://127.0.0.1/webhook", "HIKER_APP_SECRET": "s" * 32},
    )
    assert settings.graph_mock_webhook_url == "http://127.0.0.1/webhook"
