"""``hiker aimock``: the local stand-in for an OpenAI-compatible model API (``HIKER_AIMOCK_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from hiker.core.settings.base import CommonSettings


class AIMockSettings(CommonSettings):
    metrics_port: int = Field(default=9107, ge=1, le=65535)
    aimock_host: str = "127.0.0.1"
    aimock_port: int = Field(default=8091, ge=1, le=65535)
    # A YAML file of scripted answers, transcripts and keyword rules (docs/ai.md); read at start.
    aimock_script: Path | None = None
    # When set, requests without ``Authorization: Bearer <this>`` get OpenAI's 401.
    aimock_api_key: SecretStr | None = None
    # A context window, in the mock's counted tokens: a longer prompt gets OpenAI's 400
    # ``context_length_exceeded``. Unset: any length is taken.
    aimock_context_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _script_exists(self) -> AIMockSettings:
        if self.aimock_script is not None and not self.aimock_script.is_file():
            raise ValueError(f"HIKER_AIMOCK_SCRIPT names no readable file: {self.aimock_script}")
        return self

    def listener_hosts(self) -> dict[str, str]:
        return {**super().listener_hosts(), "HIKER_AIMOCK_HOST": self.aimock_host}
