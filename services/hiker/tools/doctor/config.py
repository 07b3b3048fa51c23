"""Configuration: each service's variables as the service validates them, and the rules file as
conversation parses it (which also tells the idle-timer wait queues it will use)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

from pydantic_settings import BaseSettings

from hiker.conversation.rulesfile import default_rulebook, load_rules_file
from hiker.core import topology
from hiker.core.settings import (
    ApiSettings,
    CommonSettings,
    ConfigError,
    ConversationSettings,
    EventsSettings,
    IngressSettings,
    SenderSettings,
    load_settings,
)
from hiker.tools.doctor.report import Finding, Status

SERVICE_SETTINGS: Final[Mapping[str, type[BaseSettings]]] = {
    "ingress": IngressSettings,
    "conversation": ConversationSettings,
    "sender": SenderSettings,
    "api": ApiSettings,
    "events": EventsSettings,
}
# Services a setup may leave out: checked only where their own variables are set.
OPTIONAL_SERVICES: Final = frozenset({"api", "events"})


def config_findings(
    environ: Mapping[str, str], services: Collection[str]
) -> tuple[list[Finding], dict[str, BaseSettings]]:
    """A row per service of ``services``, and the settings of those whose variables are valid."""
    findings: list[Finding] = []
    loaded: dict[str, BaseSettings] = {}
    for service, cls in SERVICE_SETTINGS.items():
        if service not in services:
            continue
        try:
            loaded[service] = load_settings(cls, environ)
        except ConfigError as exc:
            findings.append(
                Finding(
                    f"config: {service}",
                    Status.FAIL,
                    str(exc).removeprefix("configuration error: "),
                    "set the named variables in the service's environment "
                    "(docs/configuration.md); never commit secrets",
                )
            )
        else:
            findings.append(Finding(f"config: {service}", Status.OK, "all variables valid"))
    return findings, loaded


def rules_findings(conversation: BaseSettings | None) -> tuple[Finding | None, list[int] | None]:
    """The rules file's row, and the wait-queue delays conversation will use (None: unknown)."""
    if not isinstance(conversation, ConversationSettings):
        return None, None
    # Without a (valid) file, conversation runs on the environment's follow-up alone.
    book = default_rulebook(conversation.followup_text, conversation.idle_timeout_seconds)
    finding = None
    path = conversation.rules_file
    if path is not None:
        try:
            book = load_rules_file(path, book)
        except ConfigError as exc:
            finding = Finding(
                "rules file",
                Status.FAIL,
                str(exc),
                "fix the named line; conversation refuses to start with this file (a running "
                "one keeps its last good rules)",
            )
        else:
            finding = Finding(
                "rules file",
                Status.OK,
                f"{path}: {len(book.rules)} rules, {len(book.numbers)} phone numbers with their "
                "own follow-up",
            )
    policies = [book.default, *book.numbers.values()]
    return finding, sorted({topology.delay_ms(policy.idle_timeout_seconds) for policy in policies})


def common_settings(environ: Mapping[str, str]) -> CommonSettings | None:
    """What every service shares (broker, Redis), or None when it is not valid here."""
    try:
        return load_settings(CommonSettings, environ)
    except ConfigError:
        return None
