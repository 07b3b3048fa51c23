"""Configuration read from the environment (``HIKER_*``), validated once at start.

Each service has its own settings class so that it asks only for what it uses: ingress needs the
app secret, sender the access token, and neither refuses to start for lack of the other's secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AnyUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hiker.core import secret_policy
from hiker.core.addresses import SENTINEL_PORT, parse_amqp_url, parse_nodes
from hiker.core.api_tokens import ApiToken, admin_token, entry_secrets, parse_tokens
from hiker.core.endpoints import Endpoint, parse_endpoints
from hiker.core.redis_store import RedisTarget

ENV_PREFIX = "HIKER_"


class ConfigError(Exception):
    """Raised when the environment does not hold a usable configuration.

    The message names every offending variable and never echoes a value, since the value may be
    a secret typed into the wrong variable.
    """


class UnsafeSecret(ConfigError, ValueError):
    """A secret Hiker must not run with (empty, published, short: core.secret_policy).

    A ValueError, so that a pydantic validator raising it reports it; a ConfigError, so that code
    outside one refuses to start with it. Its message names the variable, never the value.
    """


def check_secret(
    name: str, value: str, *, where: str = "", exposed: Sequence[str] | None = None
) -> None:
    """Raise UnsafeSecret when ``value`` must not be the secret variable ``name``.

    ``name`` is one of core.secret_policy.SECRET_KINDS (``HIKER_APP_SECRETS`` ...); ``where``
    names an entry of a list (``entry 2``); ``exposed`` the service's listeners off loopback
    (``CommonSettings.exposed_listeners()``): ``make run``'s placeholders pass only when it is
    given and empty, as from a model validator of a service listening on loopback alone.
    """
    problem = secret_policy.secret_problem(name, value, where=where, exposed=exposed)
    if problem is not None:
        raise UnsafeSecret(problem)


class CommonSettings(BaseSettings):
    """What every service needs: the broker, Redis and its observability endpoint."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@localhost:5672/"),
        description="RabbitMQ URL, vhost included; it may list the nodes of a cluster "
        "(amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost). Holds a password: a secret.",
    )
    # Replicas of each quorum queue Hiker creates (x-quorum-initial-group-size). Unset: the
    # broker's own default (quorum_queue.initial_cluster_size). RabbitMQ compares it when a
    # queue is declared again, so it must stay what the queues were created with.
    amqp_quorum_group_size: int | None = Field(default=None, ge=1, le=99)
    redis_url: SecretStr = Field(default=SecretStr("redis://localhost:6379/0"))
    # The data nodes' password; when set it replaces one in the URL (it may come from a
    # Secret of its own, e.g. the one a Redis chart makes).
    redis_password: SecretStr | None = None
    # HIKER_REDIS_URL names any node of a Redis Cluster, which the client maps out.
    redis_cluster: bool = False
    # host:port of each sentinel; the primary's address comes from them.
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = Field(default=None, validate_default=True)
    redis_sentinel_password: SecretStr | None = None
    # Move keys still under their names from before hash tags to their new names when first
    # touched (a single Redis upgraded in place; docs/architecture.md). Never on a cluster.
    redis_adopt_legacy_keys: bool = True
    redis_prefix: str = Field(default="hiker:", min_length=1)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Loopback unless deployed: the image, compose and the chart listen on 0.0.0.0 on purpose.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9100, ge=1, le=65535)
    # How long a publish waits for others to the same destination, to leave with them as one
    # message, once traffic flows (core.publisher). 0: only what one event-loop turn publishes
    # together (conversation's replies to one delivered bundle) leaves together.
    publish_linger_ms: float = Field(default=0.0, ge=0, le=1000)
    # How long a publish waits for the broker's confirm before it counts as failed.
    publish_timeout_seconds: float = Field(default=10.0, gt=0)

    # The single-valued secrets of a service, checked at start (lists check their entries).
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def listener_hosts(self) -> dict[str, str]:
        """The host of each of the service's listeners, by variable."""
        return {"HIKER_METRICS_HOST": self.metrics_host}

    def exposed_listeners(self) -> list[str]:
        """The listener variables whose host is not loopback."""
        return secret_policy.exposed_listeners(self.listener_hosts())

    @model_validator(mode="after")
    def _safe_secrets(self) -> Self:
        exposed = self.exposed_listeners()
        problems: list[str] = []
        for field in self.secret_fields:
            secret = getattr(self, field)
            if isinstance(secret, SecretStr):
                value = secret.get_secret_value()
                name = ENV_PREFIX + field.upper()
                problem = secret_policy.secret_problem(name, value, exposed=exposed)
                problems += [problem] if problem else []
        if problems:
            raise UnsafeSecret("; ".join(problems))
        return self

    @field_validator("amqp_url")
    @classmethod
    def _amqp_nodes(cls, value: SecretStr) -> SecretStr:
        parse_amqp_url(value.get_secret_value())
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_url(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("redis_url")
        if not value or url is None:
            return value
        parts = urlsplit(url.get_secret_value())
        if parts.scheme == "unix":
            raise ValueError("a Redis Cluster is reached over TCP: HIKER_REDIS_URL is unix://")
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only: end HIKER_REDIS_URL with /0")
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_nodes(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        if info.data.get("redis_cluster"):
            raise ValueError("cannot be combined with HIKER_REDIS_CLUSTER=true")
        return ",".join(str(node) for node in parse_nodes(value, SENTINEL_PORT))

    @field_validator("redis_sentinel_master")
    @classmethod
    def _sentinel_master(cls, value: str | None, info: ValidationInfo) -> str | None:
        sentinels = info.data.get("redis_sentinels")
        if "redis_sentinels" not in info.data:
            return value  # the sentinels were refused already; that error says enough
        if sentinels and not value:
            raise ValueError("is required with HIKER_REDIS_SENTINELS (the monitored name)")
        if value and not sentinels:
            raise ValueError("needs HIKER_REDIS_SENTINELS")
        return value or None

    @field_validator("redis_sentinel_password")
    @classmethod
    def _sentinel_password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not info.data.get("redis_sentinels", "refused"):
            raise ValueError("is set but HIKER_REDIS_SENTINELS is not")
        return value

    @property
    def adopts_legacy_keys(self) -> bool:
        """Keys are adopted from their old names (never on a cluster: none exist there, and a
        script could not reach them in another slot)."""
        return self.redis_adopt_legacy_keys and not self.redis_cluster

    def redis_target(self) -> RedisTarget:
        """Where ``connect_redis`` finds Redis, from the ``HIKER_REDIS_*`` variables."""

        def reveal(secret: SecretStr | None) -> str | None:
            return secret.get_secret_value() if secret is not None else None

        return RedisTarget(
            url=self.redis_url.get_secret_value(),
            password=reveal(self.redis_password),
            cluster=self.redis_cluster,
            sentinels=parse_nodes(self.redis_sentinels, SENTINEL_PORT)
            if self.redis_sentinels
            else (),
            sentinel_master=self.redis_sentinel_master,
            sentinel_password=reveal(self.redis_sentinel_password),
        )


class IngressSettings(CommonSettings):
    metrics_port: int = Field(default=9101, ge=1, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    verify_token: SecretStr
    # ``secret,secret``: numbers under more than one Meta app, or a rotation (old and new).
    # Declared before app_secret, whose check (one of the two is set) reads it.
    app_secrets: SecretStr | None = None
    # The Meta app's secret (required unless HIKER_APP_SECRETS is set; any one verifies).
    app_secret: SecretStr | None = Field(default=None, validate_default=True)
    # Meta's bodies are kilobytes (1000 batched updates stay well under this). A body declared
    # larger is refused 413 before a byte of it is read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The whole body must arrive within this long after the headers (unlike nginx's timeout
    # between two reads, a client trickling a byte at a time cannot hold a request open).
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Webhook requests being read or handled at once; past it, 503 at once (Meta retries).
    # Bodies in memory stay under this times HIKER_MAX_BODY_BYTES.
    max_concurrent_requests: int = Field(default=128, ge=1, le=100_000)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    # Webhooks arrive one request at a time: without a linger each would be a message of its
    # own, which costs the broker and both ends most of what a message costs.
    publish_linger_ms: float = Field(default=20.0, ge=0, le=1000)

    secret_fields: ClassVar[tuple[str, ...]] = ("app_secret", "verify_token")

    def listener_hosts(self) -> dict[str, str]:
        return {**super().listener_hosts(), "HIKER_HTTP_HOST": self.http_host}

    @field_validator("app_secret", "app_secrets", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: Any) -> Any:
        # compose and charts pass a variable left blank as "": no secret there.
        return None if value == "" else value

    @field_validator("app_secrets")
    @classmethod
    def _secret_list(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret_list(value.get_secret_value())
        return value

    @field_validator("app_secret")
    @classmethod
    def _some_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if "app_secrets" not in info.data:
            return value  # the list was refused already; that error says enough
        if value is None and info.data["app_secrets"] is None:
            # Reported as missing, as when it was the only way to give the secret.
            raise PydanticCustomError("missing", "required unless HIKER_APP_SECRETS is set")
        return value

    @model_validator(mode="after")
    def _safe_app_secrets(self) -> IngressSettings:
        if self.app_secrets is None:
            return self
        exposed = self.exposed_listeners()
        entries = parse_secret_list(self.app_secrets.get_secret_value())
        problems = [
            secret_policy.secret_problem(
                "HIKER_APP_SECRETS",
                entry.get_secret_value(),
                where=f"entry {position}",
                exposed=exposed,
            )
            for position, entry in enumerate(entries, 1)
        ]
        found = [problem for problem in problems if problem]
        if found:
            raise UnsafeSecret("; ".join(found))
        return self

    def signing_secrets(self) -> list[SecretStr]:
        """Every app secret a webhook's signature may be made with (HIKER_APP_SECRET first)."""
        secrets = [self.app_secret] if self.app_secret is not None else []
        if self.app_secrets is not None:
            secrets.extend(parse_secret_list(self.app_secrets.get_secret_value()))
        unique = {secret.get_secret_value(): secret for secret in secrets}
        return list(unique.values())


def parse_secret_list(text: str) -> list[SecretStr]:
    """``secret,secret`` → the secrets; an error names the entry by number, never its value."""
    secrets = []
    for position, item in enumerate(text.split(",")):
        if not item.strip():
            raise ValueError(f"entry {position + 1} is empty (a stray comma?)")
        secrets.append(SecretStr(item.strip()))
    return secrets


# Where media are kept without configuration, as the api's database: beside the checkout.
DEFAULT_MEDIA_FOLDER = Path(".hiker/media")


class GraphAccessSettings(CommonSettings):
    """Graph's address and the tokens of the business's numbers: what a service calling Graph
    (sender's sends, conversation's media downloads) needs."""

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

    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)

    @field_validator("access_token", "access_tokens", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # compose and charts pass a variable left blank as "": that is no token.
        return None if value == "" else value

    @field_validator("access_tokens")
    @classmethod
    def _token_list(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for number, token in parse_token_list(value.get_secret_value()).items():
                check_secret("HIKER_ACCESS_TOKENS", token.get_secret_value(), where=number)
        return value

    @field_validator("access_tokens_dir")
    @classmethod
    def _token_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("is not a directory")
        for path in _token_files(value):
            check_secret("HIKER_ACCESS_TOKENS_DIR", path.read_text().strip(), where=path.name)
        return value

    def graph_tokens(self) -> AccessTokens:
        """The token of each phone number, from every source configured (read now)."""
        per_number: dict[str, SecretStr] = {}
        for path in _token_files(self.access_tokens_dir):
            per_number[path.name] = SecretStr(path.read_text().strip())
        if self.access_tokens is not None:
            per_number.update(parse_token_list(self.access_tokens.get_secret_value()))
        return AccessTokens(per_number, self.access_token)


class MediaSettings(GraphAccessSettings):
    """Where media fetched through Graph are kept, and how large one may be."""

    # An object store URL (file:///var/lib/hiker/media, s3://bucket/prefix, gs://..., az://...;
    # credentials from the store's usual variables). Unset: a folder beside the checkout.
    media_store: str | None = None
    # Larger media are refused before they are read past this size (Meta: images 5 MB, audio
    # and video 16 MB, documents 100 MB).
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    def media_store_url(self) -> str:
        """``media_store``, or the default folder's ``file://`` URL."""
        return self.media_store or DEFAULT_MEDIA_FOLDER.resolve().as_uri()


# The share of the claim lease a responder may take when no timeout of its own is set: what is
# left covers saving and publishing its answer before another worker may take the message.
RESPONDER_SHARE_OF_LEASE = 2 / 3


class ConversationSettings(MediaSettings):
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
    # How long a responder may take to answer; past it the message is answered again later.
    # Less than the claim lease, or another worker could take the message over meanwhile.
    # Unset: two thirds of the lease (20 s by default; see ``responder_deadline_seconds``).
    responder_timeout_seconds: float | None = Field(default=None, gt=0)
    # ``package.module:attribute`` naming a ``hiker.bot.Bot`` (or a factory returning one).
    bot: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    # A directory put first on the import path before HIKER_BOT (or HIKER_RESPONDER) is loaded:
    # a bot's code mounted into the image rather than built into it.
    bot_path: Path | None = None
    # Mark every new message read (blue ticks) before answering, and with "typing..." shown.
    read_receipts: Literal["off", "read", "typing"] = "off"
    # How long a quiet conversation's state and history are kept (every message renews it).
    conversation_ttl_seconds: float = Field(default=30 * 24 * 3600, ge=24 * 3600)
    # Messages of each conversation kept for ``conversation.history()``, both ways.
    history_length: int = Field(default=50, ge=0, le=1000)
    # How long a person owns a conversation after answering it from the WhatsApp Business app
    # (a coexistence number's echo): the bot stays silent meanwhile (docs/handoff.md).
    handoff_minutes: float = Field(default=30.0, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _responder_within_lease(self) -> ConversationSettings:
        timeout = self.responder_timeout_seconds
        if timeout is not None and timeout >= self.claim_lease_seconds:
            raise ValueError(
                "HIKER_RESPONDER_TIMEOUT_SECONDS must be less than HIKER_CLAIM_LEASE_SECONDS "
                "(a responder still running when its claim runs out could answer twice)"
            )
        return self

    @property
    def responder_deadline_seconds(self) -> float:
        """How long a responder may take: ``responder_timeout_seconds``, or two thirds of the
        claim lease (what is left covers saving and publishing the answer)."""
        if self.responder_timeout_seconds is not None:
            return self.responder_timeout_seconds
        return self.claim_lease_seconds * RESPONDER_SHARE_OF_LEASE

    @model_validator(mode="after")
    def _one_answerer(self) -> ConversationSettings:
        if self.responder and self.bot:
            raise ValueError("HIKER_RESPONDER and HIKER_BOT are both set: set one of them")
        return self


class SenderSettings(GraphAccessSettings):
    metrics_port: int = Field(default=9103, ge=1, le=65535)
    send_rate_per_second: float = Field(default=80.0, ge=0)
    # Meta's pair rate limit (131056): about one message every 6 s to one user, bursts allowed.
    user_send_interval_seconds: float = Field(default=6.0, ge=0)
    user_send_burst: int = Field(default=10, ge=1, le=1000)
    max_attempts: int = Field(default=8, ge=1, le=50)
    prefetch: int = Field(default=64, ge=1, le=10_000)

    def tokens(self) -> AccessTokens:
        """The token of each phone number (``graph_tokens``)."""
        return self.graph_tokens()

    @model_validator(mode="after")
    def _some_token(self) -> SenderSettings:
        if self.access_token is None and not self.access_tokens and not self.access_tokens_dir:
            raise ValueError(_NO_TOKEN)
        return self


def _token_files(directory: Path | None) -> list[Path]:
    """The files of ``directory`` named by a phone number id (a mounted Secret also holds
    ``..data`` and the like)."""
    if directory is None:
        return []
    return [p for p in sorted(directory.iterdir()) if p.is_file() and p.name.isdigit()]


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


# Where ``hiker api`` keeps its records without configuration: a file beside the checkout,
# so that ``make run`` needs no database server.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.hiker/hiker.db"


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


class EventsSettings(CommonSettings):
    """``hiker events``: where events for a backend go, how they are signed, how long retried."""

    metrics_port: int = Field(default=9106, ge=1, le=65535)
    # Comma-separated endpoints (core.endpoints): HTTPS, or plain HTTP on loopback. A secret,
    # since a URL may carry a token in its query.
    events_urls: SecretStr
    # Signs every body (X-Hiker-Signature-256: sha256=HMAC-SHA256(secret, body)).
    events_secret: SecretStr
    # How long an event is retried (5xx, 429, timeouts, refused) before it is parked.
    events_retry_hours: float = Field(default=24.0, gt=0, le=24 * 7)
    # How long one POST may take before it counts as a timeout (and is retried).
    events_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # POSTs under way at once per endpoint (the prefetch of its queue's consumer).
    events_concurrency: int = Field(default=16, ge=1, le=1000)
    # Prefetch of the queue where events get their id and seq, before they go to each endpoint.
    prefetch: int = Field(default=64, ge=1, le=10_000)

    secret_fields: ClassVar[tuple[str, ...]] = ("events_secret",)

    @field_validator("events_urls")
    @classmethod
    def _endpoints(cls, value: SecretStr) -> SecretStr:
        parse_endpoints(value.get_secret_value())
        return value

    def endpoints(self) -> tuple[Endpoint, ...]:
        return parse_endpoints(self.events_urls.get_secret_value())


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
        if isinstance(error.get("ctx", {}).get("error"), UnsafeSecret):  # it names the variable
            problems.append(str(error["ctx"]["error"]))
            continue
        if not error["loc"]:  # a rule across variables: its message names them
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        if error["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            problems.append(f"{name} is invalid: {error['msg']}")
    return "configuration error: " + "; ".join(problems)
