from __future__ import annotations

import hashlib
import hmac

import pytest

from hiker.core.signature import SignatureCheck, check_signature, sign


def test_sign_matches_metas_scheme() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    expected = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert sign(b"secret", body) == expected


def test_valid_missing_and_invalid() -> None:
    body = b"{}"
    s = [b"s"]
    assert check_signature(s, body, sign(b"s", body)) is SignatureCheck.VALID
    assert check_signature(s, body, None) is SignatureCheck.MISSING
    assert check_signature(s, body, "") is SignatureCheck.MISSING
    assert check_signature(s, body, sign(b"other", body)) is SignatureCheck.INVALID
    assert check_signature(s, body + b" ", sign(b"s", body)) is SignatureCheck.INVALID
    assert check_signature(s, body, "sha1=abc") is SignatureCheck.INVALID
    assert check_signature(s, body, "sha256=\u00e9\u00e9") is SignatureCheck.INVALID
    # Case of the hex digest matters to nobody but an attacker probing: uppercase is refused.
    assert check_signature(s, body, sign(b"s", body).upper()) is SignatureCheck.INVALID


def test_a_signature_under_any_of_several_secrets_is_valid() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    secrets = [b"first app", b"second app", b"rotated in"]
    for secret in secrets:
        assert check_signature(secrets, body, sign(secret, body)) is SignatureCheck.VALID
    assert check_signature(secrets, body, sign(b"retired", body)) is SignatureCheck.INVALID
    # A signature of another body under any secret stays invalid.
    assert check_signature(secrets, body, sign(b"second app", b"{}")) is SignatureCheck.INVALID
    assert check_signature([], body, sign(b"first app", body)) is SignatureCheck.INVALID


def test_every_secret_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    # No early exit: the time taken must not tell which secret (if any) signed the body.
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    body = b"{}"
    secrets = [b"one", b"two", b"three"]
    for secret in secrets:
        compared.clear()
        assert check_signature(secrets, body, sign(secret, body)) is SignatureCheck.VALID
        assert len(compared) == 3
