"""The api's bearer tokens: several at once (a new one added before the old one is removed:
rotation without downtime), each with scopes and, optionally, the phone numbers it may use.

``HIKER_API_TOKENS`` holds them as entries separated by commas or newlines::

    <token>:<scope>+<scope>[@<phone_number_id>+<phone_number_id>]

    k8f3...e1:read+send@106540352242922, 9b2c...7a:admin

Why one variable and not a file: every other setting is a ``HIKER_*`` variable, a Kubernetes
Secret key maps onto it with ``secretKeyRef`` (no volume, no reloader), and the format needs no
parser beyond ``str.split``. A token is a bearer token as RFC 6750 spells them (letters,
digits and ``-._~+/``, ``=`` padding at the end), so the separators ``:@,`` never occur in one.

A parse error names the entry by its position and never quotes the token. Scopes:
``read`` (the history routes), ``send`` (``POST /v1/messages``), ``admin`` (every route,
including those later issues add).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# A token is a secret: one short enough to guess is refused, whatever its scopes.
MIN_TOKEN_LENGTH: Final = 24
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ENTRY_SEPARATORS: Final = re.compile(r"[,\n\r]+")
_PHONE_NUMBER_ID: Final = re.compile(r"[0-9]{1,64}")
_SHOWN_WORD_MAX: Final = 8


class Scope(StrEnum):
    READ = "read"
    SEND = "send"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiToken:
    """One accepted token, kept as its SHA-256 (never the token itself)."""

    digest: bytes
    scopes: frozenset[Scope]
    # The phone number ids it may read or send for; None: all of them.
    numbers: frozenset[str] | None
    # What logs call it: which entry it came from (``HIKER_API_TOKEN`` or ``HIKER_API_TOKENS
    # entry 2``), so an operator sees which token is still in use before removing it.
    name: str

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def may_use(self, phone_number_id: str) -> bool:
        return self.numbers is None or phone_number_id in self.numbers


def admin_token(secret: str, name: str) -> ApiToken:
    """A token with every scope and every number (what ``HIKER_API_TOKEN`` is)."""
    return ApiToken(_digest(secret.encode()), frozenset({Scope.ADMIN}), None, name)


def parse_tokens(text: str, variable: str = "HIKER_API_TOKENS") -> tuple[ApiToken, ...]:
    """Every entry of ``text``; ValueError naming the first bad entry by its position."""
    tokens: list[ApiToken] = []
    seen: dict[bytes, int] = {}
    entries = [entry.strip() for entry in _ENTRY_SEPARATORS.split(text)]
    for position, entry in enumerate((e for e in entries if e), start=1):
        token = _entry(entry, f"entry {position}", f"{variable} entry {position}")
        if token.digest in seen:
            raise ValueError(f"entries {seen[token.digest]} and {position} hold the same token")
        seen[token.digest] = position
        tokens.append(token)
    if not tokens:
        raise ValueError("holds no entry; give <token>:<scope>+<scope>[@<number>+<number>]")
    return tuple(tokens)


def entry_secrets(text: str) -> list[str]:
    """The token of each entry of ``text``, in order (for the secret policy's checks)."""
    entries = (entry.strip() for entry in _ENTRY_SEPARATORS.split(text))
    return [entry.partition(":")[0] for entry in entries if entry]


def _entry(entry: str, where: str, name: str) -> ApiToken:
    secret, colon, rest = entry.partition(":")
    if not colon:
        raise ValueError(f"{where}: give <token>:<scopes>, e.g. <token>:read+send")
    if not _B64TOKEN.fullmatch(secret):
        raise ValueError(f"{where}: the token may hold only letters, digits and -._~+/ (then =)")
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"{where}: the token is shorter than {MIN_TOKEN_LENGTH} characters; use a long "
            "random one (openssl rand -hex 32)"
        )
    scopes_text, at, numbers_text = rest.partition("@")
    scopes: set[Scope] = set()
    for word in (part.strip() for part in scopes_text.split("+")):
        try:
            scopes.add(Scope(word))
        except ValueError:
            # A short word is a typo worth showing; a long one may be a misplaced secret.
            shown = f" {word!r}" if len(word) <= _SHOWN_WORD_MAX else ""
            raise ValueError(
                f"{where}: unknown scope{shown}; each one of {', '.join(Scope)}"
            ) from None
    numbers: frozenset[str] | None = None
    if at:
        listed = [number.strip() for number in numbers_text.split("+")]
        if not all(_PHONE_NUMBER_ID.fullmatch(number) for number in listed):
            raise ValueError(f"{where}: after @ give phone number ids (digits) joined by +")
        numbers = frozenset(listed)
    return ApiToken(_digest(secret.encode()), frozenset(scopes), numbers, name)


def find(tokens: Iterable[ApiToken], offered: bytes) -> ApiToken | None:
    """The token ``offered`` is, if any, in constant time: every entry is compared (no early
    exit), and digests of equal length are compared, so neither the position of a match nor
    a token's length shows in the time taken."""
    digest = _digest(offered)
    found: ApiToken | None = None
    for token in tokens:
        if hmac.compare_digest(digest, token.digest):
            found = token
    return found


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()
