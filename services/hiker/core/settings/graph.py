"""What calls Graph needs (its address, the numbers' tokens) and where media fetched through
it are kept; the sender's settings and the Graph mock's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    AnyUrl,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from hiker.core.settings.base import CommonSettings, check_secret

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
    # Where the mock POSTs the status webhooks of the messages it accepts (sent, then delivered
    # or failed), as Meta does: ingress's ``/webhook``. Unset: no statuses.
    graph_mock_webhook_url: str | None = None
    # The app secret those webhooks are signed with (ingress's HIKER_APP_SECRET).
    app_secret: SecretStr | None = None

    @field_validator("graph_mock_webhook_url", "app_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # compose passes a variable left blank as "".
        return None if value == "" else value

    @model_validator(mode="after")
    def _statuses_are_signed(self) -> GraphMockSettings:
        if self.graph_mock_webhook_url is not None and self.app_secret is None:
            raise ValueError(
                "HIKER_APP_SECRET is required with HIKER_GRAPH_MOCK_WEBHOOK_URL: status "
                "webhooks are signed with it, as Meta signs them"
            )
        return self
