"""The api's tokens: HIKER_API_TOKENS read entry by entry (errors name the entry, never the
token), HIKER_API_TOKEN kept as one admin token, scopes and numbers, and a match that compares
every token whichever one matches."""

from __future__ import annotations

import hmac

import pytest

from hiker.core import api_tokens
from hiker.core.api_tokens import Scope, find, parse_tokens
from hiker.core.settings import ApiSettings, ConfigError, load_settings

READER = "reader-token-0123456789abcdef"
SENDER = "sender-token-0123456789abcdef"
OLD = "old-admin-token-0123456789abcdef"


def test_entries_give_scopes_and_numbers() -> None:
    reader, sender, admin = parse_tokens(
        f"{READER}:read@100000000000001+100000000000002,\n {SENDER}:send+read\n{OLD}:admin"
    )
    assert (reader.scopes, reader.numbers) == (
        {Scope.READ}, {"100000000000001", "100000000000002"}
    )  # fmt: skip
    assert (sender.scopes, sender.numbers) == ({Scope.SEND, Scope.READ}, None)
    assert reader.allows(Scope.READ)
    assert not reader.allows(Scope.SEND)
    assert not sender.allows(Scope.ADMIN)
    assert all(admin.allows(scope) for scope in Scope)
    assert reader.may_use("100000000000001")
    assert not reader.may_use("100000000000003")
    assert sender.may_use("100000000000003")
    assert reader.name == "HIKER_API_TOKENS entry 1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{READER}:read, {READER}:send", "entries 1 and 2 hold the same token"),
        (f"{READER}:read,{SENDER}", "entry 2: give <token>:<scopes>"),
        (f"{READER}:reed", "entry 1: unknown scope 'reed'; each one of read, send, admin"),
        (f"{READER}:read+{SENDER}", "entry 1: unknown scope; each one of"),
        (f"{READER}:read@12x", "entry 1: after @ give phone number ids"),
        (f"{READER}:read@", "entry 1: after @ give phone number ids"),
        ("short-token:read", "entry 1: the token is shorter than 24 characters"),
        ("not a token at all!:read", "entry 1: the token may hold only"),
        (" , \n", "holds no entry"),
    ],
)
def test_a_bad_entry_is_named_and_its_token_never_shown(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ApiSettings, {"HIKER_API_TOKENS": text})
    message = str(caught.value)
    assert expected in message
    assert "HIKER_API_TOKENS" in message
    for secret in (READER, SENDER, "short-token", "not a token at all!"):
        assert secret not in message


def test_the_single_token_stays_an_admin_token_and_either_will_do() -> None:
    (legacy,) = load_settings(ApiSettings, {"HIKER_API_TOKEN": OLD}).tokens()
    assert (legacy.scopes, legacy.numbers, legacy.name) == (
        {Scope.ADMIN}, None, "HIKER_API_TOKEN"
    )  # fmt: skip
    both = load_settings(
        ApiSettings, {"HIKER_API_TOKEN": OLD, "HIKER_API_TOKENS": f"{READER}:read"}
    )
    assert [token.name for token in both.tokens()] == [
        "HIKER_API_TOKEN",
        "HIKER_API_TOKENS entry 1",
    ]
    # Left blank (as compose and charts pass an unset variable): the other one must be there.
    only_list = load_settings(
        ApiSettings, {"HIKER_API_TOKEN": "", "HIKER_API_TOKENS": f"{READER}:read"}
    )
    assert len(only_list.tokens()) == 1
    with pytest.raises(ConfigError, match="HIKER_API_TOKEN is required"):
        load_settings(ApiSettings, {"HIKER_API_TOKEN": "", "HIKER_API_TOKENS": ""})


def test_a_token_is_found_by_comparing_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = parse_tokens(f"{READER}:read,{SENDER}:send,{OLD}:admin")
    compared: list[int] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a) + len(b))
        return compare(a, b)

    monkeypatch.setattr(api_tokens.hmac, "compare_digest", counting)
    for offered, expected in ((READER, tokens[0]), (OLD, tokens[2]), ("nope", None)):
        compared.clear()
        assert find(tokens, offered.encode()) == expected
        # Every entry, whichever matched, and digests of one length: no timing tells which.
        assert compared == [64, 64, 64]
    assert find(tokens, b"\xff\xfe") is None
