"""``POST /v1/messages``: a backend's send, read as the rules file reads an action, then handed
to the sender (pacing, retries and parking as for any reply) once per Idempotency-Key.

The sender sends each key once (its claim in Redis); the record of the key adds what the claim
cannot: the same id for a repeated key, a key reused for another request refused, a key in
flight answered as such, and no new publish once the broker took the command (the claim
expires, the record stays).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from hiker.api import history
from hiker.core.actions import (
    ACTIONS_BY_NAME,
    AnyAction,
    InvalidAction,
    Reaction,
    parse_action,
    readable,
)
from hiker.core.contracts import SendMessage

KIND: Final = "api"
# How long a request holds its key: past the longest a publish may take (the broker's confirm
# timeout, ``core.broker.PUBLISH_TIMEOUT_SECONDS``, 10 s) so that a slow request is not taken
# over, short enough that a retry after a crash goes through within seconds. Leases are in each
# replica's clock: skew between replicas (NTP keeps it to milliseconds) is far below it.
KEY_LEASE_SECONDS: Final = 15.0
PHONE_NUMBER_ID_MAX = 64
# A phone number, or a business-scoped user id (``US.ENT.`` and up to 128 characters).
RECIPIENT_MAX = 160


class InvalidRequest(Exception):
    """What is wrong with a request, field by field (``(field, message)``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(
            "; ".join(f"{where}: {what}" if where else what for where, what in problems)
        )
        self.problems = problems


class KeyReused(Exception):
    """The Idempotency-Key was used before for another request."""


class KeyInFlight(Exception):
    """Another request holds the Idempotency-Key right now; retry after ``retry_after``
    seconds (when its lease ends)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"in flight; retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SendRequest:
    phone_number_id: str
    to: str
    action: AnyAction

    def digest(self) -> str:
        """The request's fingerprint: what a repeated key must ask for again."""
        canonical = json.dumps(
            [self.phone_number_id, self.to, self.action.model_dump(mode="json")],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_send(body: object) -> SendRequest:
    """``{phone_number_id, to, <one action as in the rules file>}``; InvalidRequest naming
    every problem."""
    if not isinstance(body, dict):
        raise InvalidRequest([("", "the body must be a JSON object")])
    if _holds_nul(body):
        # Neither Meta nor PostgreSQL takes it, and it is in no message a person writes.
        raise InvalidRequest([("", "the body holds a NUL character (\\u0000)")])
    problems: list[tuple[str, str]] = []
    number = _identifier(
        body.get("phone_number_id"), "phone_number_id", PHONE_NUMBER_ID_MAX, problems
    )
    if number is not None and not (number.isascii() and number.isdigit()):
        problems.append(("phone_number_id", "must be the digits of a phone number id"))
    to = _identifier(body.get("to"), "to", RECIPIENT_MAX, problems)
    named = [key for key in body if key not in ("phone_number_id", "to")]
    action: AnyAction | None = None
    if len(named) != 1:
        problems.append(
            ("", f"give exactly one action ({', '.join(ACTIONS_BY_NAME)}), not {len(named)}")
        )
    else:
        action = _action(named[0], body[named[0]], problems)
    if problems or number is None or to is None or action is None:
        raise InvalidRequest(problems)
    return SendRequest(number, to, action)


def _holds_nul(body: object) -> bool:
    # A loop, not recursion: JSON may nest deeper than Python's recursion limit.
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _identifier(
    value: object, name: str, longest: int, problems: list[tuple[str, str]]
) -> str | None:
    if value is None:
        problems.append((name, "is required"))
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > longest
        or not value.isprintable()
        or value != value.strip()
    ):
        problems.append((name, f"must be 1 to {longest} printable characters, no spaces"))
        return None
    return value


def _action(name: str, content: object, problems: list[tuple[str, str]]) -> AnyAction | None:
    try:
        action = parse_action(name, content)
    except InvalidAction as exc:
        for where, message in exc.problems:
            problems.append((".".join(str(part) for part in (where or (name,))), message))
        return None
    # Nothing is being answered here: what to quote or react to must be named.
    if getattr(action, "quote", False):
        problems.append((f"{name}.quote", "there is no message to quote here; give reply_to"))
    if isinstance(action, Reaction) and action.message_id is None:
        problems.append((f"{name}.message_id", "is required: the message to react to"))
    return action


class Sends(Protocol):
    """The records of api sends and their keys (``db.repository.RecordStore``)."""

    async def claim_key(
        self,
        key: str,
        *,
        send_id: str,
        request_hash: str,
        holder: str,
        now_us: int,
        lease_until_us: int,
    ) -> history.KeyState | None: ...

    async def release_key(self, key: str, holder: str) -> None: ...

    async def finish_key(self, key: str, now_us: int) -> None: ...

    async def add_outbound(self, message: history.Outbound) -> bool: ...


Publish = Callable[[SendMessage], Awaitable[None]]


@dataclass(frozen=True)
class Acceptance:
    send_id: str
    # True when the key was known: a repeat of an earlier request.
    repeated: bool
    # True when this request took the key over from one that held it past its lease.
    taken_over: bool = False


def send_id_of(idempotency_key: str) -> str:
    """The send's id: fixed by the key alone, so a repeat is answered with the same one."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class SendAcceptor:
    """Accepts each Idempotency-Key once, as Stripe does: the key and a hash of the request
    are recorded first (one statement, so that of two racing requests one wins), then the
    command is published, then the key is marked published.

    - A repeat of a published request: the same id, nothing published again.
    - The key with another request: ``KeyReused`` (422).
    - The key held by a request in flight: ``KeyInFlight`` (409, retry after the lease).
    - A request that crashed between recording and publishing leaves the key to its lease;
      past it a retry of the same request takes the key over and publishes. Should the first
      request still publish late, the sender's own claim on the key sends it once.
    """

    def __init__(
        self,
        sends: Sends,
        publish: Publish,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = KEY_LEASE_SECONDS,
    ) -> None:
        self._sends = sends
        self._publish = publish
        self._clock = clock
        self._lease_seconds = lease_seconds

    async def accept(self, request: SendRequest, idempotency_key: str) -> Acceptance:
        """Hand ``request`` to the sender once per key, and record it as accepted.

        Raises KeyReused, KeyInFlight; the broker's and the database's errors propagate (the
        caller answers 503, the client retries with the same key, which a failed publish gave
        back at once).
        """
        send_id = send_id_of(idempotency_key)
        key = f"{KIND}:{send_id}"
        digest = request.digest()
        holder = secrets.token_hex(16)
        now = self._clock()
        state = await self._sends.claim_key(
            key,
            send_id=send_id,
            request_hash=digest,
            holder=holder,
            now_us=history.to_us(now),
            lease_until_us=history.to_us(now + self._lease_seconds),
        )
        if state is None or state.holder != holder:
            return self._not_ours(state, digest, send_id, now)
        command = SendMessage(
            idempotency_key=key,
            phone_number_id=request.phone_number_id,
            to=request.to,
            actions=(request.action,),
            kind=KIND,
            correlation_id=key,
        )
        try:
            await self._publish(command)
        except Exception:
            # Given back so that the client's retry need not wait out the lease; with the
            # database away as well, the lease ends by itself.
            with contextlib.suppress(Exception):
                await self._sends.release_key(key, holder)
            raise
        await self._sends.add_outbound(
            history.Outbound(
                idempotency_key=key,
                phone_number_id=request.phone_number_id,
                user=request.to,
                kind=KIND,
                type=request.action.type,
                text=readable(request.action),
                at_us=history.to_us(now),
                send_id=send_id,
                request_hash=digest,
            )
        )
        await self._sends.finish_key(key, history.to_us(self._clock()))
        taken_over = state.attempts > 1
        return Acceptance(send_id, repeated=taken_over, taken_over=taken_over)

    def _not_ours(
        self, state: history.KeyState | None, digest: str, send_id: str, now: float
    ) -> Acceptance:
        if state is None:
            raise KeyInFlight(1)
        if state.request_hash != digest:
            raise KeyReused()
        if state.published:
            return Acceptance(send_id, repeated=True)
        left = state.lease_until_us / 1_000_000 - now
        raise KeyInFlight(max(1, math.ceil(left)))
