"""``hiker doctor``: its options, and the report it prints."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping

from hiker.tools.doctor.checkup import DEFAULT_TIMEOUT_SECONDS, DoctorOptions, diagnose
from hiker.tools.doctor.report import exit_code, render_json, render_table


def default_ingress_url(environ: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{environ.get('HIKER_HTTP_PORT') or 8080}/webhook"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingress-url",
        default=None,
        help="webhook URL to handshake with (default http://127.0.0.1:$HIKER_HTTP_PORT/webhook)",
    )
    parser.add_argument(
        "--phone-number-id",
        default=None,
        help="business phone number id to look up on Graph (default $HIKER_PHONE_NUMBER_ID)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds each network check may take (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    """``hiker doctor``: print the report; 0 when every check passed, else 1."""
    # Client libraries log connection failures on their own; the report already says it better.
    for noisy in ("aio_pika", "aiormq", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    environ = os.environ
    options = DoctorOptions(
        ingress_url=args.ingress_url or default_ingress_url(environ),
        phone_number_id=args.phone_number_id or environ.get("HIKER_PHONE_NUMBER_ID") or None,
        timeout=args.timeout,
    )
    findings = asyncio.run(diagnose(environ, options))
    if args.json:
        print(render_json(findings, strict=args.strict))
    else:
        print(render_table(findings))
    sys.stdout.flush()
    return exit_code(findings, strict=args.strict)
