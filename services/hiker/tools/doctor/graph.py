"""Graph API: the access token accepted, its expiry, and the phone number id known to it.

Every call is a read (``GET``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from pydantic import SecretStr

from hiker.core.settings import SenderSettings
from hiker.tools.doctor.report import Finding, Status

# A token that expires sooner than this is worth a warning: renewing takes a person.
EXPIRY_WARNING_SECONDS: Final = 7 * 24 * 3600


async def check_graph(
    session: aiohttp.ClientSession, settings: SenderSettings, phone_number_id: str | None
) -> list[Finding]:
    """Every configured token against Graph: the default one with the phone number id when
    known (else ``/me``), and each number's own token with its number."""
    tokens = settings.tokens()
    findings: list[Finding] = []
    if tokens.default is not None:
        target = None if phone_number_id in tokens.numbers else phone_number_id
        findings += await _check_token(session, settings, tokens.default, target, "")
    for number in tokens.numbers:
        token = tokens.for_number(number)
        assert token is not None
        findings += await _check_token(session, settings, token, number, f" of {number}")
    return findings


async def _check_token(
    session: aiohttp.ClientSession,
    settings: SenderSettings,
    secret: SecretStr,
    phone_number_id: str | None,
    whose: str,
) -> list[Finding]:
    """One token's rows: ``graph: access token{whose}`` and its phone number id's."""
    rows = _Rows(whose)
    base = f"{str(settings.graph_base_url).rstrip('/')}/{settings.graph_api_version}"
    headers = {"Authorization": f"Bearer {secret.get_secret_value()}"}
    target = phone_number_id or "me"
    try:
        async with session.get(f"{base}/{target}", headers=headers) as response:
            status = response.status
            body = await _json_object(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [
            Finding(
                rows.token,
                Status.FAIL,
                f"Graph not reachable at {base} ({type(exc).__name__})",
                "check HIKER_GRAPH_BASE_URL and outbound network access",
            ),
            _phone_row_not_checked(rows, phone_number_id, "Graph not reachable"),
        ]
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    code = error.get("code") if error else None
    message = str(error.get("message", "")) if error else ""
    if status == 401 or code == 190:
        return [
            Finding(
                rows.token,
                Status.FAIL,
                f"rejected (HTTP {status}, Graph code {code}: {message})",
                f"renew {rows.variable} (a System User token with whatsapp_business_messaging "
                "does not expire) and restart the sender; then `hiker parked replay --reason 190`",
            ),
            _phone_row_not_checked(rows, phone_number_id, "the token was refused"),
        ]
    if phone_number_id is None:
        token = (
            Finding(rows.token, Status.OK, "accepted by Graph (GET /me)")
            if status == 200
            else _graph_failure(rows.token, status, code, message)
        )
        return [token, _phone_row_not_checked(rows, None, "")]
    if status == 200:
        expiry = await _token_expiry(session, base, headers, secret, rows.token, rows.variable)
        name = body.get("verified_name") or "no verified name"
        quality = body.get("quality_rating") or "unknown"
        return [
            expiry,
            Finding(
                rows.phone,
                Status.OK,
                f"{phone_number_id} known: {name}, quality {quality}",
            ),
        ]
    if code == 100:
        return [
            Finding(rows.token, Status.OK, "accepted by Graph"),
            Finding(
                rows.phone,
                Status.FAIL,
                f"{phone_number_id} unknown to this token (Graph code 100: {message})",
                "use the Phone number ID from WhatsApp Manager > API Setup, and a token whose "
                "app is subscribed to that WhatsApp Business Account",
            ),
        ]
    return [
        _graph_failure(rows.token, status, code, message),
        _phone_row_not_checked(rows, phone_number_id, f"Graph answered HTTP {status}"),
    ]


def _graph_failure(check: str, status: int, code: object, message: str) -> Finding:
    return Finding(
        check,
        Status.FAIL,
        f"Graph answered HTTP {status} (code {code}: {message or 'no error message'})",
        "look the code up in Meta's Cloud API error reference; 4xx is ours to fix, 5xx Meta's",
    )


class _Rows:
    """The names of one token's rows."""

    def __init__(self, whose: str) -> None:
        self.token = f"graph: access token{whose}"
        self.phone = f"graph: phone number id{whose}"
        # Where an operator renews this token.
        self.variable = (
            "that number's entry of HIKER_ACCESS_TOKENS (or its file in HIKER_ACCESS_TOKENS_DIR)"
            if whose
            else "HIKER_ACCESS_TOKEN"
        )


def _phone_row_not_checked(rows: _Rows, phone_number_id: str | None, reason: str) -> Finding:
    if phone_number_id is None:
        return Finding(
            rows.phone,
            Status.WARN,
            "not checked: no phone number id given",
            "pass --phone-number-id or set HIKER_PHONE_NUMBER_ID",
        )
    return Finding(rows.phone, Status.WARN, f"not checked: {reason}", "see above")


async def _token_expiry(
    session: aiohttp.ClientSession,
    base: str,
    headers: Mapping[str, str],
    secret: SecretStr,
    check: str,
    variable: str,
) -> Finding:
    """The token row for an accepted token, with its expiry when ``debug_token`` tells it.

    ``debug_token`` may refuse a token that inspects itself (it wants an app token), in which
    case the expiry is simply unknown: the token works now, which is what matters most.
    """
    params = {"input_token": secret.get_secret_value()}
    try:
        async with session.get(f"{base}/debug_token", params=params, headers=headers) as response:
            body = await _json_object(response) if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError):
        body = {}
    data = body.get("data")
    expires_at = data.get("expires_at") if isinstance(data, dict) else None
    if not isinstance(expires_at, int):
        return Finding(check, Status.OK, "accepted by Graph; expiry unknown")
    if expires_at == 0:
        return Finding(check, Status.OK, "accepted by Graph; does not expire")
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if expires_at - time.time() < EXPIRY_WARNING_SECONDS:
        return Finding(
            check,
            Status.WARN,
            f"accepted by Graph; expires {when}",
            f"renew {variable} before then (a System User token does not expire)",
        )
    return Finding(check, Status.OK, f"accepted by Graph; expires {when}")


async def _json_object(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}
