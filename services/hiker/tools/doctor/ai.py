"""The AI responder's model: one tiny chat completion, when ``HIKER_AI_BASE_URL`` is set.

The call costs a few tokens. The row says how long it took, or what went wrong in the words of
``core.ai_model`` (the outcome the responder would count), never the key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import aiohttp

from hiker.core.ai_client import HttpModelClient
from hiker.core.ai_model import ContextTooLong, ModelRejected, ModelUnavailable
from hiker.core.observability import redact
from hiker.core.settings import AISettings, ConfigError, load_settings
from hiker.tools.doctor.report import Finding, Status, not_checked

CHECK: Final = "ai: model"
# A model may load its weights on the first call (Ollama, llama.cpp): more than --timeout.
MIN_TIMEOUT_SECONDS: Final = 10.0
_ASK: Final = [{"role": "user", "content": "Reply with the single word: ok"}]


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether this environment configures the AI responder (the row appears only then)."""
    return bool(environ.get("HIKER_AI_BASE_URL") or environ.get("HIKER_AI_MODEL"))


async def check_ai(
    session: aiohttp.ClientSession, environ: Mapping[str, str], timeout_seconds: float
) -> Finding:
    try:
        settings = load_settings(AISettings, environ)
    except ConfigError:
        return not_checked(CHECK, "HIKER_AI_BASE_URL / HIKER_AI_MODEL")
    if settings.ai_base_url is None or settings.ai_model is None:
        return not_checked(CHECK, "HIKER_AI_BASE_URL / HIKER_AI_MODEL")
    where = f"{settings.ai_model} at {redact(settings.ai_base_url)}"
    client = HttpModelClient(
        session,
        base_url=settings.ai_base_url,
        model=settings.ai_model,
        api_key=settings.ai_api_key,
        timeout_seconds=max(timeout_seconds, MIN_TIMEOUT_SECONDS),
    )
    started = time.monotonic()
    try:
        completion = await client.complete(_ASK)
    except ModelUnavailable as exc:
        return _unavailable(exc, where)
    except ContextTooLong as exc:
        return Finding(
            CHECK,
            Status.FAIL,
            f"{where}: a one-line prompt is too long for it ({exc})",
            "the server's context window is misconfigured (llama.cpp -c, vLLM --max-model-len)",
        )
    except ModelRejected as exc:
        return Finding(CHECK, Status.FAIL, f"{where}: refused ({exc})", _rejected_fix(str(exc)))
    took = (time.monotonic() - started) * 1000
    tokens = completion.usage.total_tokens
    counted = f"{tokens} tokens" if tokens else "no usage reported: the budget cannot count"
    return Finding(CHECK, Status.OK, f"{where} answered in {took:.0f} ms ({counted})")


def _unavailable(exc: ModelUnavailable, where: str) -> Finding:
    if exc.outcome == "rate_limited":
        wait = f"; retry after {exc.retry_after:g}s" if exc.retry_after is not None else ""
        return Finding(
            CHECK,
            Status.WARN,
            f"{where}: rate limited now{wait}",
            "turns wait and are retried; if it lasts, raise the account's rate limit or quota",
        )
    fixes = {
        "refused": "start the model server, or fix host and port in HIKER_AI_BASE_URL",
        "timeout": "the model is slow or overloaded; check the server, or raise "
        "HIKER_AI_TIMEOUT_SECONDS",
        "server_error": "the model server fails: see its logs (or the provider's status page)",
    }
    return Finding(
        CHECK,
        Status.FAIL,
        f"{where}: {exc.outcome.replace('_', ' ')} ({exc})",
        fixes.get(exc.outcome, "see the model server's logs"),
    )


def _rejected_fix(message: str) -> str:
    if "HTTP 401" in message or "HTTP 403" in message:
        return "check HIKER_AI_API_KEY (a key of this provider, for this resource)"
    if "HTTP 404" in message:
        return (
            "check HIKER_AI_MODEL (Azure OpenAI: the deployment name) and that "
            "HIKER_AI_BASE_URL ends with the API's version path (.../v1)"
        )
    return "check HIKER_AI_BASE_URL and HIKER_AI_MODEL (docs/ai.md)"
