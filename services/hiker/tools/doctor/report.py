"""The doctor's rows: statuses, the exit code, the table and JSON, and no secret in any of them."""

from __future__ import annotations

import contextlib
import json
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

_SECRET_VARIABLES: Final = (
    "HIKER_VERIFY_TOKEN",
    "HIKER_APP_SECRET",
    "HIKER_ACCESS_TOKEN",
    "HIKER_REDIS_PASSWORD",
    "HIKER_REDIS_SENTINEL_PASSWORD",
    "HIKER_API_TOKEN",
    "HIKER_EVENTS_SECRET",
    "HIKER_EVENTS_URLS",
    "HIKER_AI_API_KEY",
    "HIKER_AIMOCK_API_KEY",
)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    # Needs variables another container of the stack has: checked there (see ``stack``).
    SKIP = "SKIP"


@dataclass(frozen=True)
class Finding:
    """One row of the report: what was checked, how it went, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def not_checked(check: str, needs: str) -> Finding:
    return Finding(check, Status.WARN, f"not checked: {needs} is missing or invalid", "see above")


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values in ``environ`` that must never be shown: tokens, secrets, URL passwords."""
    values = [environ[name] for name in _SECRET_VARIABLES if environ.get(name)]
    # Tokens per phone number: each token on its own, since a message may quote one alone.
    for entry in environ.get("HIKER_ACCESS_TOKENS", "").split(","):
        values.append(entry.partition("=")[2].strip())
    # App secrets, several Meta apps' or a rotation's: each on its own too.
    values.extend(entry.strip() for entry in environ.get("HIKER_APP_SECRETS", "").split(","))
    for name in ("HIKER_AMQP_URL", "HIKER_REDIS_URL", "HIKER_DATABASE_URL"):
        with contextlib.suppress(ValueError):
            password = urlsplit(environ.get(name, "")).password
            if password:
                values.append(password)
    # Very short values would scrub ordinary words; they are no secret worth the name anyway.
    return [value for value in values if len(value) >= 4]


def scrub(findings: Iterable[Finding], values: Sequence[str]) -> list[Finding]:
    """A last guard: no finding carries a secret's value, whatever an error message quoted."""

    def clean(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return [Finding(f.check, f.status, clean(f.detail), clean(f.fix)) for f in findings]


def exit_code(findings: Sequence[Finding], *, strict: bool = False) -> int:
    """0 when nothing failed (with ``strict``, nothing warned either), else 1.

    A row checked in another container (``SKIP``) never fails this run: that run judges it.
    """
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(f.status in bad for f in findings) else 0


def render_table(findings: Sequence[Finding], width: int | None = None) -> str:
    """The findings as a table: check, status, and the detail with its fix under it."""
    width = width or max(100, shutil.get_terminal_size().columns)
    check_width = max(len("CHECK"), *(len(f.check) for f in findings))
    status_width = len("STATUS")
    detail_width = max(30, width - check_width - status_width - 4)
    indent = " " * (check_width + status_width + 4)
    lines = [f"{'CHECK':<{check_width}}  {'STATUS':<{status_width}}  DETAIL / FIX"]
    for f in findings:
        text = textwrap.wrap(f.detail, detail_width, break_on_hyphens=False) or [""]
        if f.status is not Status.OK and f.fix:
            text += textwrap.wrap(
                "fix: " + f.fix, detail_width, subsequent_indent="     ", break_on_hyphens=False
            )
        lines.append(f"{f.check:<{check_width}}  {f.status.value:<{status_width}}  {text[0]}")
        lines.extend(indent + more for more in text[1:])
    counts = {status: sum(f.status is status for f in findings) for status in Status}
    elsewhere = (
        f", {counts[Status.SKIP]} checked in other containers" if counts[Status.SKIP] else ""
    )
    lines.append(
        f"\n{counts[Status.FAIL]} failed, {counts[Status.WARN]} "
        f"warning{'' if counts[Status.WARN] == 1 else 's'}, {counts[Status.OK]} ok{elsewhere}"
    )
    return "\n".join(lines)


def render_json(findings: Sequence[Finding], *, strict: bool = False) -> str:
    """The same rows for machines, with ``ok`` as the exit code says."""
    return json.dumps(
        {
            "ok": exit_code(findings, strict=strict) == 0,
            "checks": [{**asdict(f), "status": f.status.value} for f in findings],
        },
        indent=2,
    )
