"""Meta's Conversation Routing notices (``messaging_handovers``) → ``ControlChanged``. Pure.

What Meta's reference says (WhatsApp Business Platform, "messaging_handovers webhook reference",
developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/
messaging-handovers/, updated Sep 22 2026):
- the change's field is ``messaging_handovers``;
- ``control_passed`` is delivered to the new owner (the owner called pass on the Thread control
  API); ``control_taken`` to the previous owner (the escalation partner took the thread);
- every notice has one envelope, whose ``type`` names which of the two objects,
  ``control_passed`` or ``control_taken``, is present beside it;
- a release names no new owner and sends no notice.

What the stored copy of that page did not show (its syntax block was cut off), so is read
defensively, from where other sources put it, never required:
- the business number: ``metadata.phone_number_id``, as on every other field of a WhatsApp
  change; else ``recipient.phone_number_id`` (third-party copies of an earlier version of
  Meta's example: ``recipient: {display_phone_number, phone_number_id}``);
- the user: ``sender.phone_number`` (the same copies, and YCloud's and a Rust library's notes
  that a handover names the customer by phone number); ``sender.user_id`` is taken first when
  present, as every other WhatsApp object names the business-scoped id ``user_id``;
- the app's text: ``metadata`` inside the control object (Meta's Thread control API documents
  a ``metadata`` string "forwarded verbatim ... in the resulting messaging_handovers webhook").
A notice whose kind, number or user cannot be found this way is not guessed at: it raises, and
ingress keeps the change whole for inspection (``ChangeReceived``).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from hiker.core.contracts import ControlChanged
from hiker.core.graph_ids import PhoneNumberId

CONTROLS: Final[dict[str, Literal["taken", "passed"]]] = {
    "control_taken": "taken",
    "control_passed": "passed",
}


class _Lenient(BaseModel):
    # Meta adds fields over time; unknown ones must never make a valid notice unreadable.
    model_config = ConfigDict(extra="allow")


class _Number(_Lenient):
    phone_number_id: PhoneNumberId | None = None


class _Sender(_Lenient):
    phone_number: str | None = None
    user_id: str | None = None


class _Notice(_Lenient):
    type: str | None = None
    metadata: _Number | None = None
    recipient: _Number | None = None
    sender: _Sender | None = None

    @model_validator(mode="after")
    def _readable(self) -> _Notice:
        if self.control is None:
            raise ValueError("neither control_taken nor control_passed")
        if self.phone_number_id is None:
            raise ValueError("no phone_number_id")
        if self.user is None:
            raise ValueError("no sender")
        return self

    @property
    def control(self) -> str | None:
        """``control_taken`` or ``control_passed``: the one ``type`` names, else the one
        object present (never both)."""
        extra = self.model_extra or {}
        if self.type in CONTROLS and isinstance(extra.get(self.type), dict | None):
            return self.type
        present = [name for name in CONTROLS if isinstance(extra.get(name), dict)]
        return present[0] if len(present) == 1 else None

    @property
    def phone_number_id(self) -> str | None:
        for holder in (self.metadata, self.recipient):
            if holder is not None and holder.phone_number_id:
                return holder.phone_number_id
        return None

    @property
    def user(self) -> str | None:
        # The BSUID first, as conversations are keyed (``MessageReceived.user``).
        if self.sender is None:
            return None
        return self.sender.user_id or self.sender.phone_number


def control_changes(value: dict[str, Any], received_at: float) -> list[ControlChanged]:
    """The notice in a ``messaging_handovers`` change's ``value``; ``ValidationError`` when
    it cannot be read (see the module)."""
    notice = _Notice.model_validate(value)
    # All three are there: ``_Notice`` refuses a notice without one of them.
    control, pnid, user = notice.control or "", notice.phone_number_id or "", notice.user or ""
    body = (notice.model_extra or {}).get(control)
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return [
        ControlChanged(
            phone_number_id=pnid,
            user=user.removeprefix("+"),
            control=CONTROLS[control],
            metadata=metadata if isinstance(metadata, str) else None,
            received_at=received_at,
            raw=value,
        )
    ]
