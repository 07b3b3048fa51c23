"""Statuses' callback data and pricing, and the three template webhooks, read into events."""

from __future__ import annotations

from typing import Any

from hiker.core.contracts import (
    ChangeReceived,
    StatusPricing,
    StatusReceived,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
)
from hiker.ingress.webhook import Routed, Unclassified, route
from hiker.tools.simulate import messages_change, webhook_body


def routed(body: dict[str, Any]) -> list[Routed]:
    result = route(body, received_at=7.0)
    assert not isinstance(result, Unclassified)
    return result


def test_a_status_carries_its_callback_data_pricing_and_error_details() -> None:
    statuses = [
        {
            "id": "wamid.A",
            "status": "sent",
            "timestamp": "1751000000",
            "recipient_id": "15550001111",
            "biz_opaque_callback_data": "api:snd_1",
            "pricing": {
                "billable": True,
                "pricing_model": "PMP",
                "type": "regular",
                "category": "marketing",
            },
        },
        {
            "id": "wamid.B",
            "status": "failed",
            "timestamp": "1751000001",
            "recipient_id": "15550001111",
            "errors": [
                {
                    "code": 131049,
                    "title": "This message was not delivered to maintain healthy ecosystem",
                    "error_data": {"details": "per-user marketing limit"},
                }
            ],
        },
    ]
    sent, failed = (r.event for r in routed(webhook_body(messages_change(statuses=statuses))))
    assert isinstance(sent, StatusReceived)
    assert isinstance(failed, StatusReceived)
    assert sent.biz_opaque_callback_data == "api:snd_1"
    assert sent.pricing == StatusPricing(
        billable=True, pricing_model="PMP", type="regular", category="marketing"
    )
    assert sent.pricing.charged
    assert failed.pricing is None
    assert failed.biz_opaque_callback_data is None
    assert (failed.errors[0].code, failed.errors[0].details) == (131049, "per-user marketing limit")


def test_pricing_meta_adds_to_or_types_oddly_never_loses_the_status() -> None:
    status = {
        "id": "wamid.C",
        "status": "delivered",
        "pricing": {"type": "free_customer_service", "category": 7, "price": 0.01},
    }
    [item] = routed(webhook_body(messages_change(statuses=[status])))
    assert isinstance(item.event, StatusReceived)
    assert item.event.pricing == StatusPricing(type="free_customer_service")
    assert not item.event.pricing.charged
    # Conversation-based pricing had no ``type``: ``billable`` decides there.
    assert StatusPricing(billable=True, pricing_model="CBP").charged


def template_change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": 1751247548,
                "changes": [{"field": field, "value": value}],
            }
        ],
    }


def test_the_three_template_webhooks_become_events_of_their_own() -> None:
    [paused] = routed(
        template_change(
            "message_template_status_update",
            {
                "event": "PAUSED",
                "message_template_id": 1689556908129832,
                "message_template_name": "order_update",
                "message_template_language": "en_US",
                "reason": "NONE",
                "other_info": {"title": "FIRST_PAUSE", "description": "low quality"},
            },
        )
    )
    assert paused.routing_key == "template.message_template_status_update"
    assert paused.event == TemplateStatusChanged(
        waba_id="102290129340398",
        template_id="1689556908129832",
        name="order_update",
        language="en_US",
        event="PAUSED",
        reason="NONE",
        info="FIRST_PAUSE: low quality",
        changed_at=1751247548.0,
        received_at=7.0,
    )
    [quality] = routed(
        template_change(
            "message_template_quality_update",
            {
                "previous_quality_score": "GREEN",
                "new_quality_score": "RED",
                "message_template_id": 806312974732579,
                "message_template_name": "welcome",
                "message_template_language": "en_US",
            },
        )
    )
    assert isinstance(quality.event, TemplateQualityChanged)
    assert (quality.event.previous_quality, quality.event.new_quality) == ("GREEN", "RED")
    [category] = routed(
        template_change(
            "template_category_update",
            {
                "message_template_id": 12345678,
                "message_template_name": "my_template",
                "message_template_language": "he",
                "previous_category": "UTILITY",
                "new_category": "MARKETING",
            },
        )
    )
    assert isinstance(category.event, TemplateCategoryChanged)
    assert (category.event.previous_category, category.event.new_category) == (
        "UTILITY",
        "MARKETING",
    )


def test_an_unreadable_template_change_is_kept_whole_for_inspection() -> None:
    [kept] = routed(template_change("message_template_status_update", {"event": "APPROVED"}))
    assert kept.routing_key == "change.message_template_status_update"
    assert isinstance(kept.event, ChangeReceived)
    assert kept.event.value == {"event": "APPROVED"}
