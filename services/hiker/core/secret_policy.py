"""Which secrets Hiker refuses to run with, and where ``make run``'s placeholders are allowed.

A secret anyone can read or guess protects nothing: an empty app secret makes every signature
valid, an example file's token is on the internet. So a service refuses to start on an empty,
published or short secret. ``make run`` still starts a fresh clone with placeholders of its own
(``DEV_PLACEHOLDERS``): they are accepted only while every listener of the service is on a
loopback address, where only this machine reaches it, and refused as soon as one is not.

Each problem is told as a sentence naming the variable, never its value (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class SecretKind:
    """What a secret is, the least length a real one has, and how to get a real one."""

    what: str  # with its article: "a verify token"
    min_length: int
    remedy: str


_APP_SECRET: Final = SecretKind(
    "a Meta app secret", 32, "copy it from the Meta app (App settings > Basic: 32 hex characters)"
)
_VERIFY_TOKEN: Final = SecretKind(
    "a verify token", 16, "choose a random one (openssl rand -hex 16) and enter it at Meta too"
)
_ACCESS_TOKEN: Final = SecretKind(
    "a Graph access token", 64, "use a system user's token from Meta Business Settings"
)
_API_TOKEN: Final = SecretKind("an api token", 24, "make a random one: openssl rand -hex 32")
_EVENTS_SECRET: Final = SecretKind(
    "an events signing secret", 32, "make a random one: openssl rand -hex 32"
)

# Every secret variable by name; a list variable has the kind of each of its entries.
SECRET_KINDS: Final[Mapping[str, SecretKind]] = {
    "HIKER_APP_SECRET": _APP_SECRET,
    "HIKER_APP_SECRETS": _APP_SECRET,
    "HIKER_VERIFY_TOKEN": _VERIFY_TOKEN,
    "HIKER_ACCESS_TOKEN": _ACCESS_TOKEN,
    "HIKER_ACCESS_TOKENS": _ACCESS_TOKEN,
    "HIKER_ACCESS_TOKENS_DIR": _ACCESS_TOKEN,
    "HIKER_API_TOKEN": _API_TOKEN,
    "HIKER_API_TOKENS": _API_TOKEN,
    "HIKER_EVENTS_SECRET": _EVENTS_SECRET,
}

# What ``make run`` (``hiker dev``) sets when a variable is unset, and ``hiker simulate`` signs
# with. Published in this file, hence accepted on loopback listeners only.
DEV_PLACEHOLDERS: Final[Mapping[str, str]] = {
    "HIKER_VERIFY_TOKEN": "dev-verify-token",
    "HIKER_APP_SECRET": "dev-app-secret",
    "HIKER_ACCESS_TOKEN": "dev-access-token",
    "HIKER_API_TOKEN": "dev-api-token",
}

# Words the example files and docs use for "put yours here" (deploy/compose/.env.example,
# deploy/k8s/secrets.env.example, the chart's ci values); no random secret contains them.
_PLACEHOLDER_WORDS: Final = ("change-me", "changeme", "change_me", "placeholder", "replace-me")
# Example values the docs show in full (docs/meta-setup.md); a shortened one ends in "...".
_PUBLISHED: Final = frozenset(
    {"0123456789abcdef0123456789abcdef", "4f1c2e7a9b3d5f60718293a4b5c6d7e8"}
)


def is_loopback(host: str) -> bool:
    """Whether a listener on ``host`` is reachable from this machine alone.

    A host name other than ``localhost`` counts as reachable from elsewhere: what it resolves
    to may change, and an empty host means every interface.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def exposed_listeners(hosts: Mapping[str, str]) -> list[str]:
    """The listener variables (``HIKER_HTTP_HOST`` ...) of ``hosts`` not on a loopback address."""
    return [name for name, host in hosts.items() if not is_loopback(host)]


def secret_problem(
    name: str, value: str, *, where: str = "", exposed: Sequence[str] | None = None
) -> str | None:
    """Why ``value`` must not be the secret ``name``, or None when it may.

    ``where`` names an entry of a list variable (``entry 2``); ``exposed`` lists the service's
    listeners that are not on loopback (``exposed_listeners``): ``make run``'s placeholders are
    accepted only when it is given and empty. The sentence names the variable, never the value.
    """
    kind = SECRET_KINDS[name]
    subject = f"{name} ({where})" if where else name
    # A list variable (HIKER_APP_SECRETS) has the placeholder of its single form.
    if value == DEV_PLACEHOLDERS.get(name, DEV_PLACEHOLDERS.get(name.removesuffix("S"))):
        if exposed is not None and not exposed:
            return None
        which = (
            f", and {' and '.join(exposed)} {'is' if len(exposed) == 1 else 'are'} not"
            if exposed
            else ""
        )
        return (
            f"{subject} is make run's development placeholder, which anyone can read in Hiker's "
            f"source; it is accepted only while every listener is on a loopback address{which}: "
            f"{kind.remedy}"
        )
    if not value.strip():
        return f"{subject} is empty: {kind.remedy}"
    lowered = value.lower()
    if (
        any(word in lowered for word in _PLACEHOLDER_WORDS)
        or lowered.strip() in _PUBLISHED
        or value.rstrip().endswith("...")
    ):
        return f"{subject} is an example value published with Hiker: {kind.remedy}"
    if value in DEV_PLACEHOLDERS.values():
        return f"{subject} is another variable's make run placeholder: {kind.remedy}"
    if len(value) < kind.min_length:
        return (
            f"{subject} is shorter than {kind.what} ({kind.min_length} characters at least): "
            f"{kind.remedy}"
        )
    if len(set(value)) == 1:
        return f"{subject} is one character repeated, not {kind.what}: {kind.remedy}"
    return None
