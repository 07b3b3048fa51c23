"""``hiker parked``: its options, and what it prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict

from hiker.core import topology
from hiker.core.keys import Keys
from hiker.core.settings import CommonSettings, load_settings
from hiker.tools.heldqueue import Listing, ToolError
from hiker.tools.options import positive_int
from hiker.tools.parked import events
from hiker.tools.parked.model import ParkedSend
from hiker.tools.parked.queue import DEFAULT_LIST_LIMIT, list_parked, replay_parked
from hiker.tools.table import shorten, table


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    reason_help = (
        "only messages parked for this Graph error code (e.g. 190) or reason "
        "(permanent, retries_exhausted, in_doubt); repeatable"
    )
    events_help = (
        "parked events for a backend (hiker.events.parked) instead of sends; --reason then "
        "matches the reason (permanent, retries_exhausted, maxlen), the last HTTP status (410) "
        "or the endpoint's name"
    )
    show = actions.add_parser("list", help="show parked sends; leaves them parked")
    show.add_argument("--limit", type=positive_int, default=DEFAULT_LIST_LIMIT, help="at most N")
    show.add_argument("--reason", action="append", default=[], help=reason_help)
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    show.add_argument("--events", action="store_true", help=events_help)
    replay = actions.add_parser(
        "replay", help="send parked messages again, once the cause is fixed"
    )
    replay.add_argument("--reason", action="append", default=[], help=reason_help)
    replay.add_argument("--limit", type=positive_int, default=None, help="replay at most N")
    replay.add_argument("--json", action="store_true", help="print JSON for machines")
    replay.add_argument("--events", action="store_true", help=events_help)


def run(args: argparse.Namespace) -> int:
    """``hiker parked list|replay``; 0 on success, 1 when the broker or Redis failed it."""
    settings = load_settings(CommonSettings)
    amqp_url = settings.amqp_url.get_secret_value()
    if getattr(args, "events", False):
        return _run_events(args, amqp_url)
    try:
        if args.action == "list":
            listing = asyncio.run(list_parked(amqp_url, limit=args.limit, reasons=args.reason))
            now = time.time()
            if args.json:
                rows = [parked.row(now) for parked in listing.messages]
                total = listing.totals[topology.SENDER_PARKED_QUEUE]
                print(json.dumps({"total": total, "parked": rows}, indent=2))
            else:
                print(render_listing(listing, now))
            return 0
        report = asyncio.run(
            replay_parked(
                amqp_url,
                settings.redis_target(),
                Keys(settings.redis_prefix, adopt_legacy=settings.adopts_legacy_keys),
                reasons=args.reason,
                limit=args.limit,
            )
        )
    except ToolError as exc:
        print(f"hiker parked {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        print(
            f"replayed {report.replayed}; already sent before (parked copy removed) "
            f"{report.already_sent}; left parked {report.left_parked}"
            + (f" ({report.unreadable} unreadable)" if report.unreadable else "")
        )
    return 0


def _run_events(args: argparse.Namespace, amqp_url: str) -> int:
    """``hiker parked list|replay --events``."""
    try:
        if args.action == "list":
            listing = asyncio.run(
                events.list_parked_events(amqp_url, limit=args.limit, reasons=args.reason)
            )
            now = time.time()
            print(events.as_json(listing, now) if args.json else render_events(listing, now))
            return 0
        report = asyncio.run(
            events.replay_parked_events(amqp_url, reasons=args.reason, limit=args.limit)
        )
    except ToolError as exc:
        print(f"hiker parked {args.action} --events: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        unusable = [
            f"{count} {what}"
            for count, what in (
                (report.unreadable, "unreadable"),
                (report.no_endpoint, "with no endpoint known"),
            )
            if count
        ]
        print(
            f"replayed {report.replayed}; left parked {report.left_parked}"
            + (f" ({', '.join(unusable)})" if unusable else "")
        )
    return 0


def render_events(listing: Listing[events.ParkedDelivery], now: float) -> str:
    queue = topology.EVENTS_PARKED_QUEUE
    total = listing.totals[queue]
    if not listing.messages:
        return f"nothing parked matches ({total} in {queue})"
    rows = [parked.row(now) for parked in listing.messages]
    lines = table(
        ("AGE", "REASON", "HTTP", "ENDPOINT", "TYPE", "USER", "SEQ", "EVENT ID"),
        [
            (_age(row["age_seconds"]), *cells)
            for row, cells in zip(rows, events.render(rows), strict=True)
        ],
    )
    return f"{lines}\n\n{len(rows)} shown of {total} in {queue}"


def render_listing(listing: Listing[ParkedSend], now: float) -> str:
    total = listing.totals[topology.SENDER_PARKED_QUEUE]
    if not listing.messages:
        return f"nothing parked matches ({total} in {topology.SENDER_PARKED_QUEUE})"
    rows = [parked.row(now) for parked in listing.messages]
    lines = table(
        ("AGE", "REASON", "CODE", "HTTP", "KIND", "TO", "IDEMPOTENCY KEY", "GRAPH ERROR"),
        [
            (
                _age(row["age_seconds"]),
                row["reason"],
                row["graph_code"],
                row["graph_status"],
                row["kind"] or "-",
                row["to"] or "-",
                row["idempotency_key"] or "(unreadable body)",
                shorten(row["graph_message"], 60),
            )
            for row in rows
        ],
    )
    return f"{lines}\n\n{len(rows)} shown of {total} in {topology.SENDER_PARKED_QUEUE}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
