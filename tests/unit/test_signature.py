from __future__ import annotations

import hashlib
import hmac

from hiker.core.signature import SignatureCheck, check_signature, sign


def test_sign_matches_metas_scheme() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    expected = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert sign(b"secret", body) == expected


def test_valid_missing_and_invalid() -> None:
    body = b"{}"
    assert check_signature(b"s", body, sign(b"s", body)) is SignatureCheck.VALID
    assert check_signature(b"s", body, None) is SignatureCheck.MISSING
    assert check_signature(b"s", body, "") is SignatureCheck.MISSING
    assert check_signature(b"s", body, sign(b"other", body)) is SignatureCheck.INVALID
    assert check_signature(b"s", body + b" ", sign(b"s", body)) is SignatureCheck.INVALID
    assert check_signature(b"s", body, "sha1=abc") is SignatureCheck.INVALID
    assert check_signature(b"s", body, "sha256=\u00e9\u00e9") is SignatureCheck.INVALID
    # Case of the hex digest matters to nobody but an attacker probing: uppercase is refused.
    assert check_signature(b"s", body, sign(b"s", body).upper()) is SignatureCheck.INVALID
