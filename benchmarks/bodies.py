"""Pre-generated, signed webhook bodies: one POST per line as ``key<TAB>signature<TAB>body``.

Every message has its own wamid (dedupe would otherwise drop replies). ``key`` is the user of the
POST's first message: with ``unique_users`` every POST has its own user, so the Graph mock's
``to`` identifies the webhook that caused a reply (end-to-end latency without extra plumbing).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from hiker.core.signature import sign
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

PHONE_NUMBER_ID = "100000000000001"


def user_number(run: int, index: int) -> str:
    # 15 digits, unique per (run, index): E.164-shaped and distinct between runs.
    return f"1{run % 1000:03d}{index:011d}"


def write_bodies(
    path: Path,
    *,
    posts: int,
    per_post: int = 1,
    text: str = "hello",
    secret: str,
    unique_users: bool = True,
    users: int = 1000,
    phone_number_ids: list[str] | None = None,
) -> Path:
    """``posts`` signed bodies of ``per_post`` text messages each."""
    run = secrets.randbelow(1000)
    prefix = "wamid.BENCH" + secrets.token_hex(6).upper()
    pnids = phone_number_ids or [PHONE_NUMBER_ID]
    now = int(time.time())
    secret_bytes = secret.encode()
    counter = 0
    lines: list[str] = []
    for post in range(posts):
        messages = []
        for _ in range(per_post):
            user_index = counter if unique_users else counter % users
            messages.append(
                text_message(
                    user_number(run, user_index),
                    text,
                    wamid=f"{prefix}{counter:012d}",
                    timestamp=now,
                )
            )
            counter += 1
        pnid = pnids[post % len(pnids)]
        change = messages_change(messages, phone_number_id=pnid)
        for contact in change["value"].get("contacts", []):
            # Meta's business-scoped user id (BSUID), sent alongside wa_id; pywa requires it.
            contact["user_id"] = "US." + contact["wa_id"]
        body = encode(webhook_body(change))
        lines.append(f"{messages[0]['from']}\t{sign(secret_bytes, body)}\t{body.decode()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_user_bodies(
    path: Path,
    users: list[str],
    *,
    text: str,
    secret: str,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> Path:
    """One signed single-message POST from each of ``users``, in order."""
    prefix = "wamid.USER" + secrets.token_hex(6).upper()
    secret_bytes = secret.encode()
    lines = []
    for i, user in enumerate(users):
        change = messages_change(
            [text_message(user, text, wamid=f"{prefix}{i:010d}")], phone_number_id=phone_number_id
        )
        body = encode(webhook_body(change))
        lines.append(f"{user}\t{sign(secret_bytes, body)}\t{body.decode()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
