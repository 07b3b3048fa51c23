"""What every service's settings share: the broker, Redis, the operations endpoint, the
secret policy every secret goes through, and reading them all from the environment (``HIKER_*``)
with errors that name the variable, never its value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from hiker.core import secret_policy
from hiker.core.addresses import SENTINEL_PORT, parse_amqp_url, parse_nodes
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
