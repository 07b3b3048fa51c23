"""Message templates as Meta's template webhooks describe them: what is recorded of each change,
what ``GET /v1/templates`` answers, and which statuses stop a template's sends.

Graph's own answer is what decides a send: a send of a paused template is refused by Graph
(132015) and parked with that reason by the sender, which never reads this table. A table a
webhook updates may lag or miss a change (a template un-paused by Meta while its webhook is
still on its way); Graph cannot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field

from hiker.api.history import iso, storable, to_us
from hiker.core.contracts import (
    TemplateCategoryChanged,
    TemplateEvent,
    TemplateQualityChanged,
    TemplateStatusChanged,
)

log = logging.getLogger(__name__)

# The statuses in which Meta refuses a template's sends (132015 paused, 132016 disabled).
STOPPED: Final = frozenset({"PAUSED", "DISABLED"})
# How often every replica reads the templates again for ``hiker_template_status``: a change
# another replica recorded shows within this (the one that recorded it shows it at once).
GAUGE_REFRESH_SECONDS: Final = 60.0

Aspect = Literal["status", "quality", "category"]


@dataclass(frozen=True)
class TemplateChange:
    """One aspect of a template (its status, quality or category) as of ``at_us``."""

    template_id: str
    waba_id: str | None
    name: str
    language: str
    aspect: Aspect
    value: str
    at_us: int
    recorded_at_us: int
    reason: str | None = None


def change_of(event: TemplateEvent, now: float) -> TemplateChange:
    aspect: Aspect
    reason = None
    if isinstance(event, TemplateStatusChanged):
        aspect, value = "status", event.event
        reason = " - ".join(part for part in (event.reason, event.info) if part) or None
    elif isinstance(event, TemplateQualityChanged):
        aspect, value = "quality", event.new_quality
    else:
        aspect, value = "category", event.new_category
    return TemplateChange(
        template_id=event.template_id,
        waba_id=event.waba_id,
        name=storable(event.name) or "",
        language=event.language,
        aspect=aspect,
        value=value,
        at_us=to_us(event.changed_at),
        recorded_at_us=to_us(now),
        reason=storable(reason),
    )


def stops_sends(event: TemplateEvent) -> bool:
    return isinstance(event, TemplateStatusChanged) and event.event in STOPPED


def category_changed(event: TemplateEvent) -> bool:
    return isinstance(event, TemplateCategoryChanged) and event.correct_category is None


@dataclass(frozen=True)
class TemplateRow:
    template_id: str
    waba_id: str | None
    name: str
    language: str
    status: str | None
    reason: str | None
    status_at_us: int | None
    quality: str | None
    quality_at_us: int | None
    category: str | None
    category_at_us: int | None
    updated_at_us: int


class TemplateItem(BaseModel):
    """A message template, as Meta's template webhooks last described it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Meta's template id")
    waba_id: str | None = Field(description="the WhatsApp Business Account it belongs to")
    name: str
    language: str
    status: str | None = Field(
        description="APPROVED, PAUSED, DISABLED, REJECTED, ... (null: no status webhook yet); "
        "a PAUSED or DISABLED template's sends are parked (Graph errors 132015, 132016)"
    )
    reason: str | None = Field(description="Meta's reason for the status, if it gave one")
    status_at: str | None = Field(description="ISO 8601, UTC: when Meta changed the status")
    quality: str | None = Field(description="GREEN, YELLOW, RED, UNKNOWN")
    category: str | None = Field(description="MARKETING, UTILITY, AUTHENTICATION")
    updated_at: str = Field(description="ISO 8601, UTC: when Hiker last recorded a change")

    @classmethod
    def of(cls, row: TemplateRow) -> TemplateItem:
        return cls(
            id=row.template_id,
            waba_id=row.waba_id,
            name=row.name,
            language=row.language,
            status=row.status,
            reason=row.reason,
            status_at=iso(row.status_at_us) if row.status_at_us is not None else None,
            quality=row.quality,
            category=row.category,
            updated_at=iso(row.updated_at_us),
        )


class TemplatePage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: list[TemplateItem] = Field(description="by template id")
    next_cursor: str | None = Field(description="the next page's cursor; null on the last")


def status_query(request: web.Request) -> str | None:
    """The ``status`` filter: a template status word (letters and ``_``), upper-cased."""
    raw = request.query.get("status")
    if raw is None:
        return None
    if not (0 < len(raw) <= 64 and raw.isascii() and raw.replace("_", "").isalpha()):
        raise ValueError("must be a template status, e.g. PAUSED")
    return raw.upper()


def show(gauge: Gauge, rows: Sequence[TemplateRow]) -> None:
    """``hiker_template_status`` from ``rows``: 1 for each template's current status, and no
    series for a status it left (cleared and set with no await between: no scrape sees it
    half done)."""
    gauge.clear()
    for row in rows:
        if row.status is not None:
            gauge.labels(row.name, row.language, row.status).set(1)


class TemplateGauge:
    """Keeps ``hiker_template_status`` as the database has the templates."""

    def __init__(self, read: Callable[[], Awaitable[Sequence[TemplateRow]]], gauge: Gauge) -> None:
        self._read = read
        self._gauge = gauge

    async def refresh(self) -> None:
        show(self._gauge, await self._read())

    async def refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the database away: the next round catches up
                log.warning("reading the templates for their metric failed", exc_info=True)
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)
