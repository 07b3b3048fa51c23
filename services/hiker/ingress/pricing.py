"""A status's ``pricing`` object, read leniently. Pure.

Meta's status webhook carries ``pricing: {billable, pricing_model, type, category}`` on the
statuses of a message it prices (sent, delivered, read; per-message pricing since July 2025:
``pricing_model`` ``PMP``, ``type`` ``regular`` / ``free_customer_service`` /
``free_entry_point``). Meta adds fields and deprecates others (``billable``): a field of another
type, or one Hiker does not know, is left out, never the status with it.
"""

from __future__ import annotations

from typing import Any, Final

from hiker.core.contracts import StatusPricing

_FIELDS: Final[dict[str, type]] = {
    "billable": bool,
    "pricing_model": str,
    "type": str,
    "category": str,
}
# Longer than any value Meta sends: a label and a column, never a story.
_LONGEST: Final = 64


def price_of(raw: object) -> StatusPricing | None:
    """The known fields of ``raw`` (a status's ``pricing``), or None when it has none."""
    if not isinstance(raw, dict):
        return None
    kept: dict[str, Any] = {
        name: value
        for name, value in raw.items()
        if name in _FIELDS
        and isinstance(value, _FIELDS[name])
        and not (isinstance(value, str) and not 0 < len(value) <= _LONGEST)
    }
    return StatusPricing.model_validate(kept) if kept else None
