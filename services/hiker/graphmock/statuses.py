"""The status webhooks the Graph mock sends for what it accepted, shaped as Meta's.

Meta reports each message it accepted by status webhooks to the app's webhook URL: ``sent``,
then ``delivered`` (and ``read``), or ``failed`` with Meta's error. Each status names the
message (``id``), its recipient, echoes the send's ``biz_opaque_callback_data`` and carries
``pricing`` (per-message pricing: ``pricing_model`` PMP, ``type``, ``category``). The mock plays
this so that a local stack and the tests see what a real one would:

- a template is priced ``regular`` (charged) in the category its name suggests (a name with
  ``marketing`` or ``promo``: marketing; ``auth`` or ``otp``: authentication; else utility); any
  other message is free (``free_customer_service``, category ``service``);
- a recipient in the reserved range ``+1 555 099 xxxx`` (``1555099`` and four digits) is
  accepted and then reported ``failed`` with 131026 (undeliverable), and a send scripted with
  ``{"status": 200, "failed_status": <code>}`` (``POST /_mock/faults``) fails later with that code.

Statuses are best effort, as a mock's: one that ingress refuses is logged, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import aiohttp
import orjson

from hiker.core.signature import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

# Phone numbers a send to is accepted, then reported failed (as ``555`` numbers are fictional).
FAILING_PREFIX: Final = "1555099"
UNDELIVERABLE: Final = 131026
# What Meta's error codes page calls the codes the mock may report.
_TITLES: Final = {
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "User has stopped receiving marketing messages",
    130472: "User's number is part of an experiment",
}


def fails_later(address: str) -> bool:
    """Whether a send to ``address`` is reported failed after it was accepted."""
    return address.startswith(FAILING_PREFIX) and len(address) == len(FAILING_PREFIX) + 4


def pricing(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``pricing`` Meta would report for ``payload`` (see the module)."""
    if payload.get("type") != "template":
        return {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    name = str(payload.get("template", {}).get("name", "")).lower()
    if "marketing" in name or "promo" in name:
        category = "marketing"
    elif "auth" in name or "otp" in name:
        category = "authentication"
    else:
        category = "utility"
    return {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}


def status_body(
    phone_number_id: str,
    wamid: str,
    payload: dict[str, Any],
    state: str,
    *,
    code: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """A ``messages`` webhook carrying one status of the message ``wamid`` sent as ``payload``."""
    status: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(int(now if now is not None else time.time())),
        "recipient_id": payload.get("to") or payload.get("recipient"),
    }
    callback = payload.get("biz_opaque_callback_data")
    if isinstance(callback, str):
        status["biz_opaque_callback_data"] = callback
    if state == "failed":
        failure = code if code is not None else UNDELIVERABLE
        title = _TITLES.get(failure, "Message failed to send")
        status["errors"] = [
            {
                "code": failure,
                "title": title,
                "message": title,
                "error_data": {"details": f"Graph mock: failed status {failure}"},
            }
        ]
    else:
        status["pricing"] = pricing(payload)
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "100000000000000",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": [status],
                        },
                    }
                ],
            }
        ],
    }


class StatusReporter:
    """Posts each accepted message's statuses, signed, to the webhook URL, in the background."""

    def __init__(self, session: aiohttp.ClientSession, url: str, app_secret: str) -> None:
        self._session = session
        self._url = url
        self._secret = app_secret.encode()
        self._tasks: set[asyncio.Task[None]] = set()

    def report(
        self, phone_number_id: str, wamid: str, payload: dict[str, Any], failed: int | None
    ) -> None:
        """``sent`` then ``delivered``; ``failed`` (code ``failed``) instead of delivered."""
        task = asyncio.ensure_future(self._play(phone_number_id, wamid, payload, failed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(
        self, phone_number_id: str, wamid: str, payload: dict[str, Any], failed: int | None
    ) -> None:
        states = ("sent", "failed") if failed is not None else ("sent", "delivered")
        for state in states:
            body = orjson.dumps(status_body(phone_number_id, wamid, payload, state, code=failed))
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body),
            }
            try:
                async with self._session.post(self._url, data=body, headers=headers) as answer:
                    if answer.status != 200:
                        log.warning("status webhook refused", extra={"status": answer.status})
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("status webhook not delivered", extra={"error": type(exc).__name__})
