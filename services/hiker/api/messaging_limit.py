"""The portfolio's messaging limit, read from Graph when HIKER_MESSAGING_LIMIT is unset.

Meta's "Messaging limits" page (developers.facebook.com/documentation/business-messaging/
whatsapp/messaging-limits) names the field: ``whatsapp_business_manager_messaging_limit`` of a
business phone number (``messaging_limit_tier`` is deprecated), and the limits: 250, 2,000,
10,000, 100,000, unlimited, shared by every number of the portfolio. The values are spelled
as Meta's ``phone_number_quality_update`` webhook reference spells a limit (``TIER_50``,
``TIER_250``, ...); ``TIER_2K`` and the answer's shape (``{"<field>": "TIER_2K", "id"}``) are
from public references of Graph clients (Kapso's, Splashify's), not from Meta's. A value not
known here is logged and read as no limit (Meta still enforces its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import aiohttp
import orjson
from yarl import URL

from hiker.core.settings import AccessTokens

log = logging.getLogger(__name__)

FIELD: Final = "whatsapp_business_manager_messaging_limit"
# The tiers' unique users per 24 hours; TIER_UNLIMITED: None.
TIERS: Final[dict[str, int | None]] = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1_000,
    "TIER_2K": 2_000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}
# Meta raises a limit within hours: read again this often.
REFRESH_SECONDS: Final = 3600.0
# After a failed read, the next try waits this long (the last value read stays in use).
RETRY_SECONDS: Final = 60.0


def limit_of_tier(tier: object) -> int | None:
    """The unique users a tier allows; None for unlimited or a tier not known here."""
    if isinstance(tier, str) and tier in TIERS:
        return TIERS[tier]
    log.warning("messaging limit tier not known; no limit applied", extra={"tier": str(tier)})
    return None


class GraphMessagingLimit:
    """``GET /{version}/{phone_number_id}?fields=whatsapp_business_manager_messaging_limit``,
    cached; before the first answer (Graph away), no limit: Meta enforces its own."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        *,
        base_url: str,
        api_version: str,
        tokens: AccessTokens,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._versioned = URL(base_url) / api_version
        self._tokens = tokens
        self._clock = clock
        self._client: aiohttp.ClientSession | None = None
        self._limit: int | None = None
        self._next_read = 0.0

    async def __call__(self, numbers: Sequence[str]) -> int | None:
        if numbers and self._clock() >= self._next_read:
            await self._read(numbers[0])
        return self._limit

    async def _read(self, phone_number_id: str) -> None:
        token = self._tokens.for_number(phone_number_id)
        self._next_read = self._clock() + RETRY_SECONDS
        if token is None:
            return
        url = (self._versioned / phone_number_id).with_query(fields=FIELD)
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        try:
            if self._client is None:
                self._client = self._session()
            async with self._client.get(url, headers=headers) as response:
                body = orjson.loads(await response.read()) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning("messaging limit not read from Graph (%s)", type(exc).__name__)
            return
        if not isinstance(body, dict) or FIELD not in body:
            log.warning("Graph did not tell the messaging limit; the last one read stays")
            return
        self._limit = limit_of_tier(body[FIELD])
        self._next_read = self._clock() + REFRESH_SECONDS
        log.info("messaging limit read from Graph", extra={"limit": self._limit})
