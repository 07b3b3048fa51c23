"""``hiker <command>``: the only place that picks a service, reads the environment and runs it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

from hiker.core.settings import ConfigError


@dataclass(frozen=True)
class ServiceEntry:
    """A service the ``hiker`` command runs: its declaration, imported only when chosen."""

    declaration: str  # ``module:attribute`` of its ``kernel.Service``
    help: str


SERVICES: Final[Mapping[str, ServiceEntry]] = {
    "ingress": ServiceEntry(
        "hiker.ingress.app:SERVICE", "verify Meta's webhooks and publish every update to RabbitMQ"
    ),
    "conversation": ServiceEntry(
        "hiker.conversation.app:SERVICE", "dedupe, apply reply rules, keep idle timers"
    ),
    "sender": ServiceEntry(
        "hiker.sender.app:SERVICE",
        "call the Graph API: paced, retried, parked on permanent failure",
    ),
    "api": ServiceEntry(
        "hiker.api.app:SERVICE",
        "record history in a database; serve it and sends to a backend over HTTP",
    ),
    "events": ServiceEntry(
        "hiker.events.app:SERVICE", "POST signed events to a backend: retried, parked, replayable"
    ),
    "graph-mock": ServiceEntry("hiker.graphmock.app:SERVICE", "a local stand-in for the Graph API"),
    "aimock": ServiceEntry(
        "hiker.aimock.app:SERVICE",
        "a local OpenAI-compatible stand-in for the AI responder's model",
    ),
}


def _simulate(args: argparse.Namespace) -> int:
    from hiker.tools.simulate import simulate, simulate_template, template_change

    secret = os.environ.get("HIKER_APP_SECRET") or args.dev_secret
    if args.template is not None:
        given = (args.template_event, args.template_quality, args.template_category)
        if sum(value is not None for value in given) != 1:
            print(
                "hiker simulate: --template needs one of --template-event, "
                "--template-quality, --template-category",
                file=sys.stderr,
            )
            return 2
        change = template_change(
            args.template,
            args.template_language,
            event=args.template_event,
            quality=args.template_quality,
            category=args.template_category,
        )
        status, answer = asyncio.run(simulate_template(args.url, secret, change))
        print(f"{status} {answer} ({change['field']} of {args.template})")
        return 0 if status == 200 else 1
    status, answer, wamid = asyncio.run(
        simulate(
            args.url,
            args.user,
            args.text,
            secret,
            args.phone_number_id,
            args.wamid,
            button=args.button,
            handover=args.handover,
            standby=args.standby,
        )
    )
    print(f"{status} {answer} ({'field' if args.handover else 'wamid'} {wamid})")
    return 0 if status == 200 else 1


def _dev(args: argparse.Namespace) -> int:
    from hiker.tools.dev import run_all

    return asyncio.run(run_all(args.bot))


class ToolModule(Protocol):
    """What a tool's module offers: its options, and a run that returns the exit code."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class Tool:
    module: str  # imported only when the tool is chosen: a service never loads a tool's code
    help: str

    def load(self) -> ToolModule:
        return cast(ToolModule, importlib.import_module(self.module))


TOOLS: Final[Mapping[str, Tool]] = {
    "doctor": Tool("hiker.tools.doctor.cli", "check a setup and print what to fix"),
    "parked": Tool("hiker.tools.parked.cli", "list parked sends, or replay them"),
    "poison": Tool("hiker.tools.poison.cli", "list poisoned or inspected messages, or replay them"),
    "tunnel-url": Tool("hiker.tools.tunnel", "print the public webhook URL of a tunnel"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command by name and help; the options of the tool ``command`` alone, so that only
    its module is imported (``hiker --help`` and the services import none)."""
    parser = argparse.ArgumentParser(
        prog="hiker", description="Hiker: a WhatsApp Cloud API bot platform around RabbitMQ."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, entry in SERVICES.items():
        commands.add_parser(name, help=entry.help)
    sim = commands.add_parser(
        "simulate",
        help="post a signed webhook as a user (secret from HIKER_APP_SECRET)",
        description="Post a correctly signed, real-shaped webhook to an ingress: a text message "
        "(or a button tap), or with --template one of Meta's template webhooks.",
    )
    # The port `hiker dev` gives ingress, so that both read the same environment.
    port = os.environ.get("HIKER_HTTP_PORT") or "8080"
    webhook = f"http://127.0.0.1:{port}/webhook"
    sim.add_argument("--url", default=webhook, help="ingress webhook URL")
    sim.add_argument("--from", dest="user", default="15550001111", help="the user's number")
    sim.add_argument("--text", default="hello", help="the message text")
    sim.add_argument("--phone-number-id", default="100000000000001", help="business number id")
    sim.add_argument("--wamid", default=None, help="message id (default: a new one)")
    sim.add_argument(
        "--button",
        default=None,
        metavar="ID",
        help="tap the reply button (or list row) of this id instead; --text is its title",
    )
    sim.add_argument(
        "--handover",
        choices=("taken", "passed"),
        default=None,
        help="post a Conversation Routing notice instead: another app took the user's thread "
        "(taken), or it was passed to this app (passed)",
    )
    sim.add_argument(
        "--standby",
        action="store_true",
        help="post the message as a standby copy (another app owns the thread)",
    )
    sim.add_argument(
        "--template",
        default=None,
        metavar="NAME",
        help="post a template webhook for this template instead of a message",
    )
    sim.add_argument("--template-language", default="en_US", help="the template's language")
    sim.add_argument(
        "--template-event",
        default=None,
        metavar="EVENT",
        help="its status changed: APPROVED, PAUSED, DISABLED, ... (message_template_status_update)",
    )
    sim.add_argument(
        "--template-quality",
        default=None,
        metavar="SCORE",
        help="its quality changed: GREEN, YELLOW, RED (message_template_quality_update)",
    )
    sim.add_argument(
        "--template-category",
        default=None,
        metavar="CATEGORY",
        help="its category changed: MARKETING, UTILITY, ... (template_category_update)",
    )
    sim.add_argument(
        "--dev-secret",
        default="dev-app-secret",
        help="secret used when HIKER_APP_SECRET is unset (matches `make run`)",
    )
    dev = commands.add_parser("dev", help="run every service locally (what `make run` does)")
    dev.add_argument(
        "--bot",
        default=None,
        metavar="MODULE:BOT",
        help="answer by this bot (HIKER_BOT), imported from the current directory; "
        "conversation restarts when one of its files is saved",
    )
    for name, tool in TOOLS.items():
        options = commands.add_parser(name, help=tool.help, description=tool.help)
        if name == command:
            tool.load().configure(options)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is one."""
    known = {*SERVICES, *TOOLS, "simulate", "dev"}
    return next((word for word in argv if word in known), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(chosen_command(argv)).parse_args(argv)
    try:
        if args.command in SERVICES:
            from hiker.core import kernel

            kernel.run(kernel.load(SERVICES[args.command].declaration))
            return 0
        if args.command == "simulate":
            return _simulate(args)
        if args.command in TOOLS:
            return TOOLS[args.command].load().run(args)
        return _dev(args)
    except ConfigError as exc:
        print(f"hiker {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
