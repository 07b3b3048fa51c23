"""``hiker <command>``: the only place that picks a service, reads the environment and runs it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from hiker.core.observability import configure_logging
from hiker.core.runtime import Site, run, serve
from hiker.core.settings import (
    ConfigError,
    ConversationSettings,
    GraphMockSettings,
    IngressSettings,
    SenderSettings,
    load_settings,
)


def _run_ingress() -> None:
    from hiker.ingress.app import OPS_APP, create_app

    settings = load_settings(IngressSettings)
    configure_logging("ingress", settings.log_level)
    app = create_app(settings)
    run(
        serve(
            # Operations first: health answers while the broker connection is being made.
            Site(app[OPS_APP], settings.metrics_host, settings.metrics_port),
            Site(app, settings.http_host, settings.http_port),
        )
    )


def _run_conversation() -> None:
    from hiker.conversation.app import create_app

    settings = load_settings(ConversationSettings)
    configure_logging("conversation", settings.log_level)
    run(serve(Site(create_app(settings), settings.metrics_host, settings.metrics_port)))


def _run_sender() -> None:
    from hiker.sender.app import create_app

    settings = load_settings(SenderSettings)
    configure_logging("sender", settings.log_level)
    run(serve(Site(create_app(settings), settings.metrics_host, settings.metrics_port)))


def _run_graph_mock() -> None:
    from hiker.graphmock.app import OPS_APP, create_app

    settings = load_settings(GraphMockSettings)
    configure_logging("graph-mock", settings.log_level)
    app = create_app(settings)
    run(
        serve(
            Site(app, settings.graph_mock_host, settings.graph_mock_port),
            Site(app[OPS_APP], settings.metrics_host, settings.metrics_port),
        )
    )


SERVICES: dict[str, tuple[Callable[[], None], str]] = {
    "ingress": (_run_ingress, "verify Meta's webhooks and publish every update to RabbitMQ"),
    "conversation": (_run_conversation, "dedupe, apply reply rules, keep idle timers"),
    "sender": (_run_sender, "call the Graph API: paced, retried, parked on permanent failure"),
    "graph-mock": (_run_graph_mock, "a local stand-in for the Graph API"),
}


def _simulate(args: argparse.Namespace) -> int:
    from hiker.tools.simulate import simulate

    secret = os.environ.get("HIKER_APP_SECRET") or args.dev_secret
    status, answer, wamid = asyncio.run(
        simulate(args.url, args.user, args.text, secret, args.phone_number_id, args.wamid)
    )
    print(f"{status} {answer} (wamid {wamid})")
    return 0 if status == 200 else 1


def _dev(_: argparse.Namespace) -> int:
    from hiker.tools.dev import run_all

    return asyncio.run(run_all())


def _doctor(args: argparse.Namespace) -> int:
    from hiker.tools.doctor import cli

    return cli.run(args)


def _parked(args: argparse.Namespace) -> int:
    from hiker.tools.parked import cli

    return cli.run(args)


def _poison(args: argparse.Namespace) -> int:
    from hiker.tools.poison import cli

    return cli.run(args)


def _tunnel_url(args: argparse.Namespace) -> int:
    from hiker.tools import tunnel

    return tunnel.run(args)


# Tools each add their own options (``configure``) and run with the parsed arguments.
TOOLS: dict[str, tuple[Callable[[argparse.Namespace], int], str, str]] = {
    "doctor": (_doctor, "hiker.tools.doctor.cli", "check a setup and print what to fix"),
    "parked": (_parked, "hiker.tools.parked.cli", "list parked sends, or replay them"),
    "poison": (
        _poison,
        "hiker.tools.poison.cli",
        "list poisoned or inspected messages, or replay them",
    ),
    "tunnel-url": (_tunnel_url, "hiker.tools.tunnel", "print the public webhook URL of a tunnel"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiker", description="Hiker: a WhatsApp Cloud API bot platform around RabbitMQ."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in SERVICES.items():
        commands.add_parser(name, help=help_text)
    sim = commands.add_parser(
        "simulate",
        help="post a signed webhook as a user (secret from HIKER_APP_SECRET)",
        description="Post a correctly signed, real-shaped text-message webhook to an ingress.",
    )
    sim.add_argument("--url", default="http://127.0.0.1:8080/webhook", help="ingress webhook URL")
    sim.add_argument("--from", dest="user", default="15550001111", help="the user's number")
    sim.add_argument("--text", default="hello", help="the message text")
    sim.add_argument("--phone-number-id", default="100000000000001", help="business number id")
    sim.add_argument("--wamid", default=None, help="message id (default: a new one)")
    sim.add_argument(
        "--dev-secret",
        default="dev-app-secret",
        help="secret used when HIKER_APP_SECRET is unset (matches `make run`)",
    )
    commands.add_parser("dev", help="run every service locally (what `make run` does)")
    for name, (_, module, help_text) in TOOLS.items():
        tool = commands.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).configure(tool)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in SERVICES:
            SERVICES[args.command][0]()
            return 0
        if args.command == "simulate":
            return _simulate(args)
        if args.command in TOOLS:
            return TOOLS[args.command][0](args)
        return _dev(args)
    except ConfigError as exc:
        print(f"hiker {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
