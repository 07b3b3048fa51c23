"""``hiker ingress``: the webhook listener, Meta's secrets, and what a request may cost."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hiker.core import secret_policy
from hiker.core.settings.base import CommonSettings, UnsafeSecret


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
