"""Meta's template webhooks → events. Pure: no I/O, no clock (the caller passes the time).

Three change fields of a WhatsApp Business Account, each ``entry[].changes[].value`` as Meta's
webhook references give it (developers.facebook.com/documentation/business-messaging/whatsapp/
webhooks/reference/...):
- ``message_template_status_update``: ``event`` (APPROVED, REJECTED, PAUSED, DISABLED, ...),
  ``message_template_id``, ``message_template_name``, ``message_template_language``,
  ``reason``, ``message_template_category``, ``other_info: {title, description}``;
- ``message_template_quality_update``: ``previous_quality_score``, ``new_quality_score`` and the
  same three template fields (shape as in pywa's test corpus; Meta's page was not at hand);
- ``template_category_update``: the template fields, ``new_category`` and either
  ``previous_category`` (a change done) or ``correct_category`` (a change announced).
The entry's ``id`` is the business account, its ``time`` when Meta triggered the webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from hiker.core.contracts import (
    TemplateCategoryChanged,
    TemplateEvent,
    TemplateQualityChanged,
    TemplateStatusChanged,
)

STATUS_FIELD: Final = "message_template_status_update"
QUALITY_FIELD: Final = "message_template_quality_update"
CATEGORY_FIELD: Final = "template_category_update"


class _Template(BaseModel):
    # Meta adds fields over time; unknown ones must never make a valid update unreadable.
    model_config = ConfigDict(extra="allow")

    # An integer in Meta's payloads; kept as text (it is an id, never a number to add).
    message_template_id: int | str
    message_template_name: str = Field(min_length=1, max_length=512)
    message_template_language: str = Field(min_length=1, max_length=32)


class _Status(_Template):
    event: str = Field(min_length=1, max_length=64)
    reason: str | None = None
    message_template_category: str | None = None
    other_info: dict[str, Any] | None = None


class _Quality(_Template):
    previous_quality_score: str | None = None
    new_quality_score: str = Field(min_length=1, max_length=64)


class _Category(_Template):
    previous_category: str | None = None
    new_category: str = Field(min_length=1, max_length=64)
    correct_category: str | None = None


def _info(other: dict[str, Any] | None) -> str | None:
    if not other:
        return None
    parts = [str(other[k]) for k in ("title", "description") if isinstance(other.get(k), str)]
    return ": ".join(parts) or None


def _status(value: dict[str, Any], waba_id: str | None, at: float, now: float) -> TemplateEvent:
    status = _Status.model_validate(value)
    return TemplateStatusChanged(
        waba_id=waba_id,
        template_id=str(status.message_template_id),
        name=status.message_template_name,
        language=status.message_template_language,
        event=status.event.upper(),
        reason=status.reason,
        category=status.message_template_category,
        info=_info(status.other_info),
        changed_at=at,
        received_at=now,
    )


def _quality(value: dict[str, Any], waba_id: str | None, at: float, now: float) -> TemplateEvent:
    quality = _Quality.model_validate(value)
    return TemplateQualityChanged(
        waba_id=waba_id,
        template_id=str(quality.message_template_id),
        name=quality.message_template_name,
        language=quality.message_template_language,
        previous_quality=quality.previous_quality_score,
        new_quality=quality.new_quality_score.upper(),
        changed_at=at,
        received_at=now,
    )


def _category(value: dict[str, Any], waba_id: str | None, at: float, now: float) -> TemplateEvent:
    category = _Category.model_validate(value)
    return TemplateCategoryChanged(
        waba_id=waba_id,
        template_id=str(category.message_template_id),
        name=category.message_template_name,
        language=category.message_template_language,
        previous_category=category.previous_category,
        new_category=category.new_category.upper(),
        correct_category=category.correct_category,
        changed_at=at,
        received_at=now,
    )


# Each template field, and what reads its ``value`` (pydantic's ValidationError when it cannot).
TEMPLATE_FIELDS: Final[
    dict[str, Callable[[dict[str, Any], str | None, float, float], TemplateEvent]]
] = {STATUS_FIELD: _status, QUALITY_FIELD: _quality, CATEGORY_FIELD: _category}


def entry_time(raw: object, received_at: float) -> float:
    """The entry's ``time`` (epoch seconds) when it is a plausible one, else ``received_at``."""
    return float(raw) if isinstance(raw, int) and 0 < raw < 10**11 else received_at
