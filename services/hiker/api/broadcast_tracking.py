"""What becomes of each broadcast recipient's send, from the events the api already consumes:
Graph's answer (``MessageSent``, ``SendParked``) by the send's key, Meta's statuses
(``StatusReceived``) by the ``biz_opaque_callback_data`` the send carried (the same key); and
the users who answer with an opt-out word (``MessageReceived``)."""

from __future__ import annotations

import logging
from typing import Final, Protocol

from hiker.api.broadcasting import KIND, MARKETING_KIND, parse_send_key
from hiker.api.history import to_us
from hiker.core.contracts import MessageReceived, MessageSent, SendParked, StatusReceived

log = logging.getLogger(__name__)

KINDS: Final = frozenset({KIND, MARKETING_KIND})
# Meta's statuses that say what became of a send (others, "played" and the like, do not).
_STATUSES: Final = frozenset({"sent", "delivered", "read", "failed"})


class Outcomes(Protocol):
    async def advance(
        self, broadcast_id: str, seq: int, outcome: str, error_code: int | None = None
    ) -> bool: ...


class OptOuts(Protocol):
    async def add(self, phone_number_id: str, users: list[str], word: str, at_us: int) -> bool: ...


class BroadcastTracker:
    def __init__(self, outcomes: Outcomes, opt_outs: OptOuts, words: frozenset[str]) -> None:
        self._outcomes = outcomes
        self._opt_outs = opt_outs
        # Casefolded (``ApiSettings.opt_out_set``).
        self._words = words

    async def message_sent(self, event: MessageSent) -> None:
        sent = parse_send_key(event.idempotency_key) if event.kind in KINDS else None
        if sent is not None:
            await self._outcomes.advance(*sent, "accepted")

    async def send_parked(self, event: SendParked) -> None:
        parked = parse_send_key(event.idempotency_key) if event.kind in KINDS else None
        if parked is not None:
            code = int(event.graph_code) if event.graph_code.isdigit() else None
            await self._outcomes.advance(*parked, "parked", code)

    async def status_received(self, event: StatusReceived) -> None:
        send = parse_send_key(event.biz_opaque_callback_data)
        if send is None or event.status not in _STATUSES:
            return
        code = event.errors[0].code if event.errors else None
        await self._outcomes.advance(*send, event.status, code)

    async def message_received(self, event: MessageReceived) -> None:
        said = (event.text or "").strip().casefold()
        if not said or said not in self._words:
            return
        # Under every id the user has: a broadcast may name them by either.
        users = [event.user] + ([event.wa_id] if event.wa_id else [])
        if await self._opt_outs.add(
            event.phone_number_id, users, said.upper(), to_us(event.received_at)
        ):
            log.info("user opted out of broadcasts", extra={"user": event.user})
