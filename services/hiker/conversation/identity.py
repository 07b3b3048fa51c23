"""A user's ids changed: Meta's ``system`` message, and the ids the conversation moves from.

A business-scoped user id (BSUID) changes when the user changes phone number. Meta reports it
on the ``messages`` field as a ``system`` message (changelog, Aug 2026): ``system.type``
``user_changed_number`` (with the new ``wa_id``) or ``user_changed_user_id``, each naming the
new ids beside ``system.previous_user_id`` (ingress keys the message by the new ones). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from hiker.core.contracts import MessageReceived
from hiker.core.identity import IDENTITY_CHANGES


@dataclass(frozen=True)
class IdentityChange:
    """The ids the user's conversation may be kept under (``previous``), and the new one."""

    kind: str
    previous: tuple[str, ...]
    user: str


def is_identity_change(event: MessageReceived) -> bool:
    """Whether ``event`` is Meta's notice that the user's ids changed (whatever it names)."""
    system = event.raw.get("system") if event.message_type == "system" else None
    return isinstance(system, dict) and system.get("type") in IDENTITY_CHANGES


def identity_change(event: MessageReceived) -> IdentityChange | None:
    """The change ``event`` reports, or None when it reports none (or names no previous id)."""
    system = event.raw.get("system")
    if not is_identity_change(event) or not isinstance(system, dict):
        return None
    # The previous BSUID, and the ids the message came from (the previous phone number when
    # the number changed): a conversation older than BSUIDs is kept under the phone number.
    candidates = (
        system.get("previous_user_id"),
        event.raw.get("from_user_id"),
        event.raw.get("from"),
    )
    previous: list[str] = []
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and candidate not in (event.user, *previous):
            previous.append(candidate)
    if not previous:
        return None
    return IdentityChange(str(system["type"]), tuple(previous), event.user)
