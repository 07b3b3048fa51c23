"""Which of a WhatsApp user's ids a value is: a phone number or a business-scoped user id.

Meta gives every user a business-scoped user id (BSUID) since April 2026: a two-letter ISO
country code, a period and up to 128 letters and digits (``US.13491208655302741918``); a parent
BSUID, shared by linked business portfolios, has ``ENT`` between them
(``US.ENT.11815799212886844830``). Phone numbers are digits only, so the shape tells them
apart. Graph takes a phone number in a send's ``to`` and a BSUID in ``recipient``, never the
other way round.
"""

from __future__ import annotations

import re
from typing import Final

_BSUID: Final = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def is_bsuid(value: str) -> bool:
    """Whether ``value`` is a business-scoped user id (or a parent one), not a phone number."""
    return _BSUID.fullmatch(value) is not None


def recipient_field(address: str) -> str:
    """The field of Graph's send body that ``address`` goes in: ``recipient`` or ``to``."""
    return "recipient" if is_bsuid(address) else "to"


# ``system`` messages by which Meta reports that a user's ids changed (changelog, Aug 2026).
IDENTITY_CHANGES: Final = frozenset({"user_changed_number", "user_changed_user_id"})
