"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>``.

Shared by ingress (which verifies) and the simulator (which signs like Meta does).
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum
from typing import Final

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
_PREFIX: Final = "sha256="


class SignatureCheck(Enum):
    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"


def sign(secret: bytes, body: bytes) -> str:
    """The header value Meta would send for ``body``."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_signature(secret: bytes, body: bytes, header: str | None) -> SignatureCheck:
    """Compare in constant time; a malformed header is as wrong as a wrong digest."""
    if not header:
        return SignatureCheck.MISSING
    expected = sign(secret, body)
    # compare_digest on equal-length ASCII bytes; a malformed header simply fails the comparison.
    if hmac.compare_digest(expected.encode(), header.strip().encode("ascii", "replace")):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID
