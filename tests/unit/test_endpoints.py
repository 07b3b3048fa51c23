"""``HIKER_EVENTS_URLS``: HTTPS, or plain HTTP on loopback; refused by name, never echoed."""

from __future__ import annotations

import pytest

from hiker.core.endpoints import parse_endpoints
from hiker.core.settings import ConfigError, EventsSettings, load_settings

SECRET = "events-secret-of-these-tests-0123"


def test_endpoints_are_named_by_host_and_hash_whatever_their_order() -> None:
    one, two = "https://crm.example.com/a?token=s3cr3t", "https://crm.example.com/b"
    first = parse_endpoints(f"{one}, {two}")
    second = parse_endpoints(f"{two},{one}")
    assert [e.name for e in first] == [e.name for e in reversed(second)]
    assert first[0].name.startswith("crm.example.com-")
    assert first[0].name != first[1].name
    assert all("s3cr3t" not in e.name and "s3cr3t" not in repr(e) for e in first)
    assert [e.index for e in first] == [0, 1]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://localhost/hook", "http://[::1]:9/x"]
)
def test_plain_http_is_accepted_on_loopback(url: str) -> None:
    (endpoint,) = parse_endpoints(url)
    assert endpoint.url == url


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "lists no URL"),
        (" , ", "lists no URL"),
        ("http://crm.example.com/hook?token=s3cr3t", "plain HTTP off loopback"),
        ("http://10.0.0.5/hook?token=s3cr3t", "plain HTTP off loopback"),
        ("ftp://crm.example.com/s3cr3t", "must start with https://"),
        ("crm.example.com/s3cr3t", "must start with https://"),
        ("https:///s3cr3t", "has no host"),
        ("https://a.example.com/x,https://a.example.com/x", "the same URL twice"),
    ],
)
def test_unsafe_or_malformed_lists_refuse_to_start_naming_the_variable(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(EventsSettings, {"HIKER_EVENTS_URLS": text, "HIKER_EVENTS_SECRET": SECRET})
    message = str(caught.value)
    assert "HIKER_EVENTS_URLS" in message
    assert why in message
    assert "s3cr3t" not in message


def test_the_secret_is_required_and_checked() -> None:
    urls = {"HIKER_EVENTS_URLS": "https://crm.example.com/hook"}
    with pytest.raises(ConfigError, match="HIKER_EVENTS_SECRET is required"):
        load_settings(EventsSettings, urls)
    with pytest.raises(ConfigError, match="HIKER_EVENTS_SECRET is shorter than"):
        load_settings(EventsSettings, {**urls, "HIKER_EVENTS_SECRET": "short-one"})
    settings = load_settings(EventsSettings, {**urls, "HIKER_EVENTS_SECRET": SECRET})
    assert settings.events_retry_hours == 24
    assert [e.host for e in settings.endpoints()] == ["crm.example.com"]
