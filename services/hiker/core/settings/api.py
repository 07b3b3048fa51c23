"""``hiker api``: its listener, its tokens, its database."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from hiker.core import secret_policy
from hiker.core.api_tokens import ApiToken, admin_token, entry_secrets, parse_tokens
from hiker.core.settings.base import UnsafeSecret
from hiker.core.settings.graph import MediaSettings

# Where ``hiker api`` keeps its records without configuration: a file beside the checkout,
# so that ``make run`` needs no database server.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.hiker/hiker.db"
# Meta's throughput per business number unless raised (messages a second).
META_DEFAULT_RATE = 80.0


class ApiSettings(MediaSettings):
    """``hiker api``: the history it records and serves, and sends from a backend; with
    ``HIKER_MEDIA_STORE`` set, the inbound media too (through Graph, with the number's token)."""

    metrics_port: int = Field(default=9105, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8081, ge=1, le=65535)
    # One token with every scope (``admin``). Empty: none; then HIKER_API_TOKENS must be set.
    api_token: SecretStr = SecretStr("")
    # Several tokens with scopes and numbers (``core.api_tokens``): rotation without downtime.
    api_tokens: SecretStr | None = None
    # SQLAlchemy URL; may hold a password. ``postgresql://`` and ``sqlite://`` are read as
    # their asyncio drivers (asyncpg, aiosqlite).
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    # How long one database statement (or getting a connection) may take before it counts as
    # the database being unavailable.
    database_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    prefetch: int = Field(default=64, ge=1, le=10_000)

    # Days the media kept are served; past them their records and bytes are deleted (an
    # hourly sweep). Unset: kept until the store's own lifecycle rules remove them.
    media_retention_days: float | None = Field(default=None, gt=0)

    # Broadcasts (``api.broadcasts``). The number's rate, as the sender is given it
    # (HIKER_SEND_RATE_PER_SECOND, the same variable): broadcasts take ``broadcast_share`` of
    # it, the rest is left to conversations' replies. 0 (the sender does not pace): Meta's
    # default rate, 80 a second, is the basis.
    send_rate_per_second: float = Field(default=80.0, ge=0)
    broadcast_share: float = Field(default=0.5, gt=0, le=1)
    # Unique users a broadcast may reach per rolling 24 hours, all numbers together (Meta's
    # portfolio messaging limit). Unset: read from Graph (the number's
    # ``whatsapp_business_manager_messaging_limit``), or no limit when Graph does not say.
    messaging_limit: int | None = Field(default=None, ge=1)
    # What a user writes (trimmed, any case) to be skipped by every later broadcast; commas
    # between words.
    opt_out_words: str = "STOP,UNSUBSCRIBE"
    # Marketing templates (``"marketing": true`` in a broadcast) go to Meta's Marketing
    # Messages endpoint (``/{phone_number_id}/marketing_messages``): onboarded portfolios only.
    marketing_messages_api: bool = False
    # The largest broadcast request body (a CSV upload or JSON recipients): ~40 bytes a user.
    broadcast_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # How often the scheduler hands a chunk of recipients to the sender.
    broadcast_tick_seconds: float = Field(default=0.25, gt=0, le=60)

    # Checked by ``_safe_api_tokens``: HIKER_API_TOKEN may be empty when HIKER_API_TOKENS is set.
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)

    def listener_hosts(self) -> dict[str, str]:
        return {**super().listener_hosts(), "HIKER_API_HOST": self.api_host}

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: Any) -> Any:
        # "" is a variable left blank by compose or a chart: no token (the rule below decides).
        if isinstance(value, str) and value and not value.strip():
            raise ValueError("is blank; set a long random value (openssl rand -hex 32)")
        return value

    @field_validator("messaging_limit", mode="before")
    @classmethod
    def _empty_limit_is_unset(cls, value: Any) -> Any:
        # A chart or compose value left blank: read the limit from Graph.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _empty_tokens_are_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _some_api_token(self) -> ApiSettings:
        if not self.api_token.get_secret_value() and self.api_tokens is None:
            raise ValueError(
                "HIKER_API_TOKEN is required but not set (or give HIKER_API_TOKENS: "
                "<token>:<scope>+<scope>[@<number>+<number>], comma-separated)"
            )
        return self

    @model_validator(mode="after")
    def _safe_api_tokens(self) -> ApiSettings:
        exposed = self.exposed_listeners()
        problems: list[str | None] = []
        single = self.api_token.get_secret_value()
        if single:
            problems.append(
                secret_policy.secret_problem("HIKER_API_TOKEN", single, exposed=exposed)
            )
        if self.api_tokens is not None:
            for position, secret in enumerate(entry_secrets(self.api_tokens.get_secret_value()), 1):
                problems.append(
                    secret_policy.secret_problem(
                        "HIKER_API_TOKENS", secret, where=f"entry {position}", exposed=exposed
                    )
                )
        found = [problem for problem in problems if problem]
        if found:
            raise UnsafeSecret("; ".join(found))
        return self

    def broadcast_rate(self) -> float:
        """Sends a second a broadcast's number is fed at: its share of the number's rate."""
        return (self.send_rate_per_second or META_DEFAULT_RATE) * self.broadcast_share

    def opt_out_set(self) -> frozenset[str]:
        """The opt-out words, casefolded, as an inbound text is compared with them."""
        return frozenset(w.strip().casefold() for w in self.opt_out_words.split(",") if w.strip())

    def tokens(self) -> tuple[ApiToken, ...]:
        """Every token the api accepts: HIKER_API_TOKEN as one admin token, and each entry of
        HIKER_API_TOKENS."""
        tokens: list[ApiToken] = []
        if self.api_token.get_secret_value():
            tokens.append(admin_token(self.api_token.get_secret_value(), "HIKER_API_TOKEN"))
        if self.api_tokens is not None:
            tokens.extend(parse_tokens(self.api_tokens.get_secret_value()))
        return tuple(tokens)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().partition("://")[0]
        if scheme not in _DATABASE_SCHEMES:
            raise ValueError("must start with sqlite:// or postgresql:// (or their +driver forms)")
        return value

    def async_database_url(self) -> str:
        """``database_url`` with the asyncio driver SQLAlchemy needs for its scheme."""
        url = self.database_url.get_secret_value()
        scheme, sep, rest = url.partition("://")
        return _DATABASE_SCHEMES[scheme] + sep + rest


_DATABASE_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
