"""``hiker poison``: its options, and what it prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any, Final

from hiker.core.settings import CommonSettings, load_settings
from hiker.tools.heldqueue import Listing, ToolError
from hiker.tools.options import positive_int
from hiker.tools.poison.model import HeldMessage
from hiker.tools.poison.queue import DEFAULT_LIST_LIMIT, list_held, replay_held
from hiker.tools.table import table

# A bundle may hold many items; the table shows the first few, --json all of them.
ITEMS_SHOWN: Final = 5


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    queue_help = (
        "only messages held in Q (hiker.poison, the default; hiker.inspect) or poisoned in Q "
        "(e.g. hiker.conversation.inbound); repeatable"
    )
    id_help = "only the message with this item id (wamid, idempotency key), message id or KEY"
    show = actions.add_parser("list", help="show poisoned (or inspected) messages; leaves them")
    replay = actions.add_parser(
        "replay", help="put them back on their original route, once the cause is fixed"
    )
    for action in (show, replay):
        action.add_argument("--queue", action="append", default=[], metavar="Q", help=queue_help)
        action.add_argument("--id", action="append", default=[], metavar="ID", help=id_help)
        action.add_argument("--json", action="store_true", help="print JSON for machines")
    show.add_argument("--limit", type=positive_int, default=DEFAULT_LIST_LIMIT, help="at most N")
    replay.add_argument("--limit", type=positive_int, default=None, help="replay at most N")


def run(args: argparse.Namespace) -> int:
    """``hiker poison list|replay``; 0 on success, 1 when the broker failed it."""
    amqp_url = load_settings(CommonSettings).amqp_url.get_secret_value()
    try:
        if args.action == "list":
            listing = asyncio.run(
                list_held(amqp_url, queues=args.queue, ids=args.id, limit=args.limit)
            )
            if args.json:
                rows = [message.row() for message in listing.messages]
                print(json.dumps({"totals": listing.totals, "messages": rows}, indent=2))
            else:
                print(render_listing(listing))
            return 0
        report = asyncio.run(
            replay_held(amqp_url, queues=args.queue, ids=args.id, limit=args.limit)
        )
    except ToolError as exc:
        print(f"hiker poison {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        routes = "".join(f"\n  {count} to {route}" for route, count in report.by_route.items())
        notes = [
            f"{report.no_route} with no known route" if report.no_route else "",
            f"{report.replayed_before} replayed before (name them with --id to replay again)"
            if report.replayed_before
            else "",
        ]
        detail = "; ".join(note for note in notes if note)
        print(
            f"replayed {report.replayed}; left {report.left}"
            + (f" ({detail})" if detail else "")
            + routes
        )
    return 0


def render_listing(listing: Listing[HeldMessage]) -> str:
    """One table per queue read; a bundle takes a line per item (the first few)."""
    blocks = []
    for queue, total in listing.totals.items():
        rows = [message.row() for message in listing.messages if message.held_in == queue]
        if not rows:
            blocks.append(f"{queue}: nothing matches ({total} held)")
            continue
        lines: list[tuple[str, ...]] = []
        for row in rows:
            lines.extend(_lines(row))
        blocks.append(
            f"{queue}: {len(rows)} shown of {total}\n"
            + table(
                ("KEY", "FROM", "REASON", "COUNT", "FIRST DEATH", "TYPE", "ITEMS", "ID", "USER"),
                lines,
            )
        )
    return "\n\n".join(blocks)


def _lines(row: dict[str, Any]) -> list[tuple[str, ...]]:
    items: list[dict[str, str | None]] = row["items"]
    first = items[0] if items else {"id": None, "user": None}
    origin = row["died_in"] or row["delivered_with"] or "-"
    replayed = f" (replayed {row['replayed_at']})" if row["replayed_at"] else ""
    lines: list[tuple[str, ...]] = [
        (
            row["digest"],
            origin,
            (row["reason"] or "kept for inspection") + replayed,
            str(row["count"]) if row["count"] is not None else "-",
            row["first_death"] or "-",
            row["type"] or "-",
            str(row["item_count"]) if row["item_count"] is not None else "?",
            first["id"] or ("(unreadable body)" if not row["readable"] else "-"),
            first["user"] or "-",
        )
    ]
    blank = ("",) * 7
    lines.extend((*blank, item["id"] or "-", item["user"] or "-") for item in items[1:ITEMS_SHOWN])
    if len(items) > ITEMS_SHOWN:
        lines.append((*blank, f"… {len(items) - ITEMS_SHOWN} more (--json shows all)", ""))
    return lines
