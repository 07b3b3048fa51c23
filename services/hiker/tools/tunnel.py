"""``hiker tunnel-url``: wait for the local ngrok agent's public URL and print the webhook URL.

Used by the compose ``tunnel`` profile: the ngrok container opens the tunnel, this prints the
callback URL to paste into Meta's app dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api", default="http://127.0.0.1:4040", help="the ngrok agent's local API address"
    )
    parser.add_argument("--path", default="/webhook", help="the webhook path on ingress")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the tunnel")


async def public_url(api: str, wait_seconds: float) -> str | None:
    """The tunnel's https URL once the agent reports one, or None after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{api.rstrip('/')}/api/tunnels") as response:
                    body = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                body = {}
            for tunnel in body.get("tunnels", []) if isinstance(body, dict) else []:
                url = tunnel.get("public_url", "") if isinstance(tunnel, dict) else ""
                if isinstance(url, str) and url.startswith("https://"):
                    return url
            await asyncio.sleep(1)
    return None


def run(args: argparse.Namespace) -> int:
    url = asyncio.run(public_url(args.api, args.wait))
    if url is None:
        print(f"no tunnel reported by {args.api} within {args.wait:.0f}s; is NGROK_AUTHTOKEN set?")
        return 1
    print(
        f"Webhook URL (Meta app dashboard > WhatsApp > Configuration > Callback URL):\n"
        f"  {url}{args.path}\n"
        f"Verify token: the HIKER_VERIFY_TOKEN from your .env. Then subscribe to 'messages'.",
        flush=True,
    )
    return 0
