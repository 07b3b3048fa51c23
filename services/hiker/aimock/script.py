"""What ``hiker aimock`` answers: scripted answers first, then keyword rules, then a default.

A script (the YAML file ``HIKER_AIMOCK_SCRIPT`` names, or ``POST /_mock/script``)::

    answers:                 # chat completions, played once each, in order
      - content: "Hello from the script"
      - tool_calls: [{name: handoff, arguments: {reason: "asked for a person"}}]
      - status: 429          # an error as OpenAI shapes it, Retry-After optional
        retry_after: 2
      - status: 400
        code: context_length_exceeded
      - delay: 3             # seconds before answering (a slow model)
        content: "sorry for the wait"
    transcripts:             # audio transcriptions, played once each, in order
      - text: "I would like to book a table"
    rules:                   # never used up: the first whose ``when`` is in the last user message
      - when: "opening hours"
        content: "We are open 9 to 5."
    latency: 3               # every answer without a delay of its own waits this long

Without a script the mock answers every user message with a deterministic, friendly text; when
tools are offered it calls ``handoff`` for a message asking for a person and ``send_buttons``
for one asking for options, so that ``make run`` shows the AI path and its tools.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hiker.core.settings import ConfigError


class ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    # An object (sent as its JSON text, as OpenAI does) or the text itself (malformed on purpose).
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class Scripted(BaseModel):
    """One answer: text and/or tool calls, or an error (``status`` >= 400); after ``delay``."""

    model_config = ConfigDict(extra="forbid")
    content: str | None = None
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    finish_reason: str | None = None
    # Counted tokens reported in ``usage``; unset: counted from the words.
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    status: int = Field(default=200, ge=200, le=599)
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = Field(default=None, ge=0)
    delay: float = Field(default=0.0, ge=0, le=600)
    # Close the connection without an answer (a server that died mid-request).
    disconnect: bool = False


class ScriptedTranscript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    status: int = Field(default=200, ge=200, le=599)
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = Field(default=None, ge=0)
    delay: float = Field(default=0.0, ge=0, le=600)


class Rule(Scripted):
    when: str = Field(min_length=1)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: list[Scripted] = Field(default_factory=list)
    transcripts: list[ScriptedTranscript] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    # Seconds every answer without a delay of its own waits (a slow model for everyone); given,
    # it replaces the previous value.
    latency: float | None = Field(default=None, ge=0, le=600)


def load_script(path: Path) -> Script:
    """The script file; ConfigError naming ``HIKER_AIMOCK_SCRIPT`` when it is not one."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Script.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"HIKER_AIMOCK_SCRIPT ({path}) is not a valid script: {exc}") from None


# OpenAI's error ``type`` and ``code`` for a status, when a script names none.
_ERRORS: Final[Mapping[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
}
# A context-length error as OpenAI words it (the mock's own window, or a scripted code).
CONTEXT_LENGTH: Final = "context_length_exceeded"


def error_body(
    status: int, *, message: str | None = None, type: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    default_type, default_code, default_message = _ERRORS.get(
        status, ("server_error", None, "The server had an error while processing your request.")
    )
    if code == CONTEXT_LENGTH and message is None:
        message = "This model's maximum context length was exceeded."
    return {
        "error": {
            "message": message or default_message,
            "type": type or default_type,
            "param": "messages" if code == CONTEXT_LENGTH else None,
            "code": code if code is not None else default_code,
        }
    }


def count_tokens(text: str) -> int:
    """The mock's deterministic token count: four tokens for every three words."""
    return math.ceil(len(text.split()) * 4 / 3)


def prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any]) -> int:
    words = " ".join(_text(m.get("content")) for m in messages)
    return count_tokens(words) + (count_tokens(json.dumps(list(tools))) if tools else 0)


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts (images have none)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The last message's text when the user wrote it; None after a tool or assistant turn."""
    if not messages or messages[-1].get("role") != "user":
        return None
    return _text(messages[-1].get("content"))


_PERSON: Final = re.compile(r"\b(person|human|agent|someone|operator|staff)\b", re.IGNORECASE)
_CHOICES: Final = re.compile(r"\b(options?|choices?|choose|menu)\b", re.IGNORECASE)


def default_answer(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> Scripted:
    """The deterministic answer without a script."""
    text = last_user_text(messages)
    if text is None:
        if messages and messages[-1].get("role") == "tool":
            return Scripted(content=_after_tools(_called(messages)))
        return Scripted(content="How can I help?")
    offered = {_tool_name(t): t for t in tools}
    if _PERSON.search(text) and "handoff" in offered:
        arguments = {"reason": "the user asked for a person"}
        return Scripted(tool_calls=[ScriptedCall(name="handoff", arguments=arguments)])
    if _CHOICES.search(text) and "send_buttons" in offered:
        arguments = _buttons(offered["send_buttons"])
        return Scripted(tool_calls=[ScriptedCall(name="send_buttons", arguments=arguments)])
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return Scripted(
        content=(
            f"You said: \u201c{shown}\u201d. I am hiker aimock, a stand-in for a language model: "
            "ask for a person to see a handoff, or for options to see buttons."
        )
    )


def _called(messages: Sequence[Mapping[str, Any]]) -> set[str]:
    """The functions the last assistant message with tool calls asked for."""
    for message in reversed(messages):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if isinstance(calls, list):
            return {_tool_name(call) for call in calls if isinstance(call, Mapping)}
    return set()


def _after_tools(called: set[str]) -> str:
    # What a model says once its tools ran: a handoff is announced; offered choices speak for
    # themselves (a blank answer sends nothing more).
    if "handoff" in called:
        return "I have asked a person to take over; they will answer you here shortly."
    if called and called <= {"send_buttons", "send_list"}:
        return ""
    return "Done. Anything else I can help with?"


def _tool_name(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    return str(function.get("name", "")) if isinstance(function, Mapping) else ""


def _buttons(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for ``send_buttons``: a body and three options, shaped as its schema asks
    (options as strings, or as objects with ``id`` and ``title``)."""
    titles = ["Yes", "No", "Maybe later"]
    parameters = tool.get("function", {}).get("parameters", {})
    properties = parameters.get("properties", {}) if isinstance(parameters, Mapping) else {}
    items = (
        properties.get("options", {}).get("items", {}) if isinstance(properties, Mapping) else {}
    )
    options: list[Any] = list(titles)
    if isinstance(items, Mapping) and items.get("type") == "object":
        options = [{"id": f"option_{i + 1}", "title": t} for i, t in enumerate(titles)]
    return {"body": "Which would you like?", "options": options}
