"""The AI responder's settings (``HIKER_AI_*``): which model, what it is told, what it may spend.

Read by conversation (which calls the model) and by ``hiker doctor`` (which calls it once). The
responder is on when ``HIKER_AI_BASE_URL`` and ``HIKER_AI_MODEL`` are both set; either alone is
a mistake worth refusing at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from hiker.core.settings.base import CommonSettings


class AISettings(CommonSettings):
    # Any OpenAI-compatible API, up to and including its version path (``.../v1``): OpenAI,
    # Azure OpenAI, vLLM, Ollama, llama.cpp's server, LiteLLM, or ``hiker aimock``.
    ai_base_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    ai_model: str | None = Field(default=None, min_length=1)
    # Sent as ``Authorization: Bearer``; a secret of a third party, never logged. Local servers
    # (Ollama, llama.cpp) take none.
    ai_api_key: SecretStr | None = None
    ai_system_prompt: str | None = None
    # A file holding the system prompt (a ConfigMap, a mounted volume); wins over the text.
    ai_system_prompt_file: Path | None = None
    # Turns of the conversation's history sent with each call, oldest first.
    ai_history_turns: int = Field(default=20, ge=0, le=200)
    # Quiet in the conversation before the model is called: a burst is answered once.
    ai_debounce_ms: int = Field(default=1500, ge=0, le=60_000)
    ai_max_tool_rounds: int = Field(default=4, ge=1, le=20)
    # The model ``/audio/transcriptions`` is asked to use for voice notes; unset: none are
    # transcribed and an audio message is answered from its lack of text.
    ai_transcribe_model: str | None = Field(default=None, min_length=1)
    # Images go to the model as image parts (a vision model); otherwise their caption does.
    ai_vision: bool = False
    # Tokens (prompt + completion, from each response's ``usage``) per day; unset: no cap.
    ai_max_tokens_per_user_day: int | None = Field(default=None, ge=1)
    ai_max_tokens_per_number_day: int | None = Field(default=None, ge=1)
    # What an over-budget turn gets: the ``ai_over_budget`` reply, or a handoff to a person.
    ai_over_budget: Literal["reply", "handoff"] = "reply"
    # One model call's deadline; past it the turn is held and retried.
    ai_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # How long a turn is retried through the broker's backoff before the ``ai_unavailable``
    # reply and a handoff.
    ai_give_up_seconds: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    # Turns in flight per conversation replica: model calls wait on the network, not the CPU.
    ai_prefetch: int = Field(default=64, ge=1, le=10_000)

    @model_validator(mode="after")
    def _model_and_url_together(self) -> AISettings:
        if (self.ai_base_url is None) != (self.ai_model is None):
            missing = "HIKER_AI_MODEL" if self.ai_model is None else "HIKER_AI_BASE_URL"
            raise ValueError(f"{missing} is required when the other HIKER_AI_* of the pair is set")
        if self.ai_system_prompt_file is not None and not self.ai_system_prompt_file.is_file():
            raise ValueError(
                f"HIKER_AI_SYSTEM_PROMPT_FILE names no readable file: {self.ai_system_prompt_file}"
            )
        return self

    @property
    def ai_enabled(self) -> bool:
        """Whether messages no rule or handler takes go to the model."""
        return self.ai_base_url is not None and self.ai_model is not None

    def ai_prompt(self) -> str | None:
        """The system prompt: the file's text when one is named, else ``HIKER_AI_SYSTEM_PROMPT``."""
        if self.ai_system_prompt_file is not None:
            return self.ai_system_prompt_file.read_text(encoding="utf-8").strip() or None
        return self.ai_system_prompt
