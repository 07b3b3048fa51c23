"""The HTTP endpoints ``hiker events`` POSTs to: parsed, checked, and named.

Pure, shared by the settings (which refuse an unsafe list at start) and the events service
(which names a queue and a metric label after each). A ``ValueError`` never quotes what it
read: a URL may carry a token in its query or a password before its host.

An endpoint's name is its host and a short hash of the whole URL (``crm.example.com-1a2b3c4d``):
readable on a dashboard, distinct for two paths on one host, the same whatever the order of
the list (so a queue keeps its events when the list is reordered), and free of any secret.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from hiker.core.secret_policy import is_loopback

_NOT_IN_NAME: Final = re.compile(r"[^a-z0-9.-]+")
_HASH_CHARS: Final = 8


@dataclass(frozen=True)
class Endpoint:
    """One configured endpoint: its position in the list, its URL and its name."""

    index: int
    url: str = field(repr=False)  # may hold a token: never logged
    name: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """Comma-separated URLs: each HTTPS, or plain HTTP on a loopback address (development).

    Raises ValueError naming the entry by its position, never by its value.
    """
    urls = [part.strip() for part in text.split(",") if part.strip()]
    if not urls:
        raise ValueError("lists no URL")
    endpoints: list[Endpoint] = []
    for index, url in enumerate(urls):
        endpoints.append(Endpoint(index, url, _checked_name(url, index)))
    names = [endpoint.name for endpoint in endpoints]
    if len(set(names)) != len(names):
        raise ValueError("lists the same URL twice")
    return tuple(endpoints)


def _checked_name(url: str, index: int) -> str:
    where = f"entry {index + 1}"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{where} is not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{where} must start with https://")
    if not host:
        raise ValueError(f"{where} has no host")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"{where} is plain HTTP off loopback: use https:// (events carry phone numbers "
            "and messages)"
        )
    if parts.fragment:
        raise ValueError(f"{where} has a #fragment, which is never sent")
    digest = hashlib.sha256(url.encode()).hexdigest()[:_HASH_CHARS]
    readable = _NOT_IN_NAME.sub("-", host.lower()).strip("-") or "host"
    return f"{readable}-{digest}"
