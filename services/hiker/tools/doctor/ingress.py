"""Ingress: the webhook URL answers Meta's verification handshake."""

from __future__ import annotations

import secrets

import aiohttp

from hiker.tools.doctor.report import Finding, Status


async def check_ingress_handshake(
    session: aiohttp.ClientSession, url: str, verify_token: str
) -> Finding:
    """Meta's verification ``GET``: 200 with the challenge echoed means Meta can subscribe."""
    check = "ingress handshake"
    challenge = str(secrets.randbelow(10**10))
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    try:
        async with session.get(url, params=params) as response:
            status = response.status
            text = await response.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Finding(
            check,
            Status.FAIL,
            f"no answer from {url} ({type(exc).__name__})",
            "start `hiker ingress`, or pass --ingress-url with the webhook's address",
        )
    if status == 200 and text == challenge:
        return Finding(check, Status.OK, f"{url} echoed the challenge")
    if status == 200:
        return Finding(
            check,
            Status.FAIL,
            f"{url} answered 200 without echoing the challenge",
            "point --ingress-url at Hiker's ingress (path /webhook), not at another service",
        )
    if status == 403:
        return Finding(
            check,
            Status.FAIL,
            f"{url} refused the verify token (403)",
            "HIKER_VERIFY_TOKEN here, the one ingress runs with, and the one in Meta's "
            "dashboard must be the same",
        )
    return Finding(
        check,
        Status.FAIL,
        f"{url} answered HTTP {status}",
        "point --ingress-url at ingress's webhook (path /webhook)",
    )
