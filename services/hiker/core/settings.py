"""Configuration read from the environment (``HIKER_*``), validated once at start.

Each service has its own settings class so that it asks only for what it uses: ingress needs the
app secret, sender the access token, and neither refuses to start for lack of the other's secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AnyUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HIKER_"


class ConfigError(Exception):
    """Raised when the environment does not hold a usable configuration.

    The message names every offending variable and never echoes a value, since the value may be
    a secret typed into the wrong variable.
    """


class CommonSettings(BaseSettings):
    """What every service needs: the broker, Redis and its observability endpoint."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@localhost:5672/"),
        description="RabbitMQ URL, vhost included; holds a password, so it is treated as secret.",
    )
    redis_url: SecretStr = Field(default=SecretStr("redis://localhost:6379/0"))
    redis_prefix: str = Field(default="hiker:", min_length=1)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9100, ge=1, le=65535)
    # How long a publish waits for others to the same destination, to leave with them as one
    # message, once traffic flows (core.publisher). 0: only what one event-loop turn publishes
    # together (conversation's replies to one delivered bundle) leaves together.
    publish_linger_ms: float = Field(default=0.0, ge=0, le=1000)

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class IngressSettings(CommonSettings):
    metrics_port: int = Field(default=9101, ge=1, le=65535)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    verify_token: SecretStr
    app_secret: SecretStr
    # Meta batches up to 1000 updates per body; a few MiB holds that with room to spare.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    # Webhooks arrive one request at a time: without a linger each would be a message of its
    # own, which costs the broker and both ends most of what a message costs.
    publish_linger_ms: float = Field(default=20.0, ge=0, le=1000)


class ConversationSettings(CommonSettings):
    metrics_port: int = Field(default=9102, ge=1, le=65535)
    idle_timeout_seconds: float = Field(default=600.0, gt=0)
    followup_text: str = Field(default="are you there", min_length=1)
    # Meta retries an unacknowledged webhook for up to 7 days, so a wamid may reappear that late.
    dedupe_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # How long a claim on a message may stay unconfirmed before another worker may take it over.
    claim_lease_seconds: float = Field(default=30.0, gt=0)
    prefetch: int = Field(default=64, ge=1, le=10_000)
    # Replies and per-number follow-ups from a YAML file (see conversation/rulesfile.py).
    rules_file: Path | None = None
    rules_reload_seconds: float = Field(default=2.0, gt=0)
    # ``package.module:factory`` building a custom responder (see conversation/responder.py).
    responder: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    # Mark every new message read (blue ticks) before answering, and with "typing..." shown.
    read_receipts: Literal["off", "read", "typing"] = "off"
    # How long a quiet conversation's state and history are kept (every message renews it).
    conversation_ttl_seconds: float = Field(default=30 * 24 * 3600, ge=24 * 3600)
    # Messages of each conversation kept for ``conversation.history()``, both ways.
    history_length: int = Field(default=50, ge=0, le=1000)


class SenderSettings(CommonSettings):
    metrics_port: int = Field(default=9103, ge=1, le=65535)
    # The token for every phone number without one of its own below.
    access_token: SecretStr | None = None
    # Tokens per phone number id, ``id=token,id=token``: operators with several numbers.
    access_tokens: SecretStr | None = None
    # Or a directory of files named by phone number id, each holding that number's token
    # (a Kubernetes Secret mounted as files).
    access_tokens_dir: Path | None = None
    graph_base_url: AnyUrl = AnyUrl("https://graph.facebook.com")
    graph_api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    graph_timeout_seconds: float = Field(default=10.0, gt=0)
    send_rate_per_second: float = Field(default=80.0, ge=0)
    # Meta's pair rate limit (131056): about one message every 6 s to one user, bursts allowed.
    user_send_interval_seconds: float = Field(default=6.0, ge=0)
    user_send_burst: int = Field(default=10, ge=1, le=1000)
    max_attempts: int = Field(default=8, ge=1, le=50)
    prefetch: int = Field(default=64, ge=1, le=10_000)

    @field_validator("access_token", "access_tokens", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # compose and charts pass a variable left blank as "": that is no token.
        return None if value == "" else value

    @field_validator("access_tokens")
    @classmethod
    def _token_list(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_token_list(value.get_secret_value())
        return value

    @field_validator("access_tokens_dir")
    @classmethod
    def _token_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("is not a directory")
        return value

    @model_validator(mode="after")
    def _some_token(self) -> SenderSettings:
        if self.access_token is None and not self.access_tokens and not self.access_tokens_dir:
            raise ValueError(_NO_TOKEN)
        return self

    def tokens(self) -> AccessTokens:
        """The token of each phone number, from every source configured (read now)."""
        per_number: dict[str, SecretStr] = {}
        if self.access_tokens_dir is not None:
            for path in sorted(self.access_tokens_dir.iterdir()):
                if path.is_file() and path.name.isdigit():
                    per_number[path.name] = SecretStr(path.read_text().strip())
        if self.access_tokens is not None:
            per_number.update(parse_token_list(self.access_tokens.get_secret_value()))
        return AccessTokens(per_number, self.access_token)


_NO_TOKEN = (
    "HIKER_ACCESS_TOKEN is required but not set (or tokens per phone number: "
    "HIKER_ACCESS_TOKENS=<id>=<token>,... or HIKER_ACCESS_TOKENS_DIR)"
)


class AccessTokens:
    """Which Graph token a phone number id sends with."""

    def __init__(self, per_number: Mapping[str, SecretStr], default: SecretStr | None) -> None:
        self._per_number = dict(per_number)
        self._default = default

    def for_number(self, phone_number_id: str) -> SecretStr | None:
        return self._per_number.get(phone_number_id, self._default)

    @property
    def numbers(self) -> list[str]:
        """The phone number ids with a token of their own."""
        return sorted(self._per_number)

    @property
    def default(self) -> SecretStr | None:
        return self._default


def parse_token_list(text: str) -> dict[str, SecretStr]:
    """``id=token,id=token`` → tokens by phone number id; the error never echoes a token."""
    tokens: dict[str, SecretStr] = {}
    for position, item in enumerate(part.strip() for part in text.split(",") if part.strip()):
        number, sep, token = item.partition("=")
        if not sep or not number.strip().isdigit() or not token.strip():
            raise ValueError(f"entry {position + 1} is not <phone number id>=<token>")
        tokens[number.strip()] = SecretStr(token.strip())
    if not tokens:
        raise ValueError("holds no <phone number id>=<token> entry")
    return tokens


class GraphMockSettings(CommonSettings):
    metrics_port: int = Field(default=9104, ge=1, le=65535)
    graph_mock_host: str = "127.0.0.1"
    graph_mock_port: int = Field(default=8090, ge=1, le=65535)
    # When set, requests without this bearer token get Graph's error 190, as the real API does.
    access_token: SecretStr | None = None
    # Tokens per phone number id (``id=token,...``), checked for those numbers instead.
    access_tokens: SecretStr | None = None


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Build ``cls`` from ``environ`` (the process environment when None) plus ``overrides``.

    Raises ConfigError naming each ``HIKER_*`` variable that is missing or malformed.
    """
    try:
        if environ is None:
            return cls(**overrides)
        values = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in environ.items()
            if key.startswith(ENV_PREFIX)
        }
        values.update(overrides)
        # model_validate skips the environment sources, so callers see only what they pass.
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across variables: its message names them
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        if error["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            problems.append(f"{name} is invalid: {error['msg']}")
    return "configuration error: " + "; ".join(problems)
