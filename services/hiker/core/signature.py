"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>``.

Shared by ingress (which verifies) and the simulator (which signs like Meta does).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
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


def check_signature(secrets: Sequence[bytes], body: bytes, header: str | None) -> SignatureCheck:
    """VALID when ``header`` is the signature of ``body`` under any of ``secrets``.

    Several secrets serve numbers under several Meta apps, and a rotation (the old and the new
    secret both accepted for a while). Each is compared in constant time and every one is
    compared, so the time taken does not tell which secret (if any) matched. A malformed header
    is as wrong as a wrong digest.
    """
    if not header:
        return SignatureCheck.MISSING
    received = header.strip().encode("ascii", "replace")
    matched = False
    for secret in secrets:
        # compare_digest on ASCII bytes; a malformed header simply fails the comparison.
        matched |= hmac.compare_digest(sign(secret, body).encode(), received)
    return SignatureCheck.VALID if matched else SignatureCheck.INVALID
