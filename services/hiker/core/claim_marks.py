"""What a claim's key holds: a lease, a mark of an outside call under way (or in doubt), or a
done value (``core.claims`` takes and settles them; these are the values themselves)."""

from __future__ import annotations

import secrets

DONE = b"done"
CLAIM_PREFIX = b"claim:"
CALL_PREFIX = b"call:"
# A call whose caller died, taken over (with a lease) by whoever settles it: until it is settled,
# a claim finds it busy while that lease runs and in doubt after, never free to redo the work.
DOUBT_PREFIX = b"doubt:"


def lease_value() -> bytes:
    """A fresh claim's value: ``claim:`` and a token of its own."""
    return CLAIM_PREFIX + secrets.token_hex(8).encode()


def call_value(within_seconds: float, claim_value: bytes, now: float) -> bytes:
    """The mark of an outside call begun ``now`` by the holder of ``claim_value``."""
    return _marked(CALL_PREFIX, within_seconds, claim_value, now)


def doubt_value(within_seconds: float, claim_value: bytes, now: float) -> bytes:
    """The mark of a call in doubt, taken over ``now`` by the holder of ``claim_value``."""
    return _marked(DOUBT_PREFIX, within_seconds, claim_value, now)


def mark_deadline_ms(mark: bytes) -> int:
    """When the holder of a call or doubt mark was due to report back (epoch ms)."""
    return int(mark.split(b":", 2)[1])


def _marked(kind: bytes, within_seconds: float, claim_value: bytes, now: float) -> bytes:
    """``kind`` + the deadline by which its holder reports back + the claim's own token."""
    deadline_ms = round((now + within_seconds) * 1000)
    return kind + str(deadline_ms).encode() + b":" + claim_value[len(CLAIM_PREFIX) :]
