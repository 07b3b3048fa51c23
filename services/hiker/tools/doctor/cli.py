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
from hiker.tools.doctor.stack import COMPOSE_INGRESS_URL, COMPOSE_SERVICES, ServiceEndpoint


def default_ingress_url(environ: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{environ.get('HIKER_HTTP_PORT') or 8080}/webhook"


def _service(value: str) -> ServiceEndpoint:
    name, _, url = value.partition("=")
    if not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must look like NAME=http://HOST:PORT")
    return ServiceEndpoint(name, url)


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
    parser.add_argument(
        "--compose",
        action="store_true",
        help="check the docker compose stack from inside one of its containers: every "
        "service's readiness, and what needs another container's variables marked as "
        "checked there",
    )
    parser.add_argument(
        "--service",
        type=_service,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a running service's operations address (its metrics port) to ask for "
        "readiness, for stacks whose services each have their own environment; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    """``hiker doctor``: print the report; 0 when every check passed, else 1."""
    # Client libraries log connection failures on their own; the report already says it better.
    for noisy in ("aio_pika", "aiormq", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    environ = os.environ
    services = tuple(args.service) or (COMPOSE_SERVICES if args.compose else ())
    ingress_url = args.ingress_url or (
        COMPOSE_INGRESS_URL if args.compose else default_ingress_url(environ)
    )
    options = DoctorOptions(
        ingress_url=ingress_url,
        phone_number_id=args.phone_number_id or environ.get("HIKER_PHONE_NUMBER_ID") or None,
        timeout=args.timeout,
        services=services,
    )
    findings = asyncio.run(diagnose(environ, options))
    if args.json:
        print(render_json(findings, strict=args.strict))
    else:
        print(render_table(findings))
    sys.stdout.flush()
    return exit_code(findings, strict=args.strict)
