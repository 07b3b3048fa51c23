"""The chart's AI responder block (conversation.ai, secret.aiApiKey): off by default; on, every
knob reaches conversation's environment, the key only through the Secret, the system prompt as
a mounted file whose change rolls the pods."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_values import ALL_FEATURES, DEFAULTS, with_overrides
from deploy_support import CHART, RELEASE, of_kind, render

from hiker.core.settings import AISettings, load_settings

pytestmark = pytest.mark.deploy

PROMPT = "You are the assistant of a bike shop. Answer briefly.\n"
KEY = "sk-chart-test-0123456789abcdef"
AI_ON = {
    "conversation.ai.baseUrl": "https://example.openai.azure.com/openai/v1",
    "conversation.ai.model": "gpt-4o-mini-deployment",
    "conversation.ai.systemPrompt": PROMPT,
    "conversation.ai.transcribeModel": "whisper-1",
    "conversation.ai.maxTokensPerUserDay": 20000,
    "conversation.ai.overBudget": "handoff",
    "secret.aiApiKey": KEY,
}


def conversation(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    (deployment,) = [
        d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-conversation")
    ]
    (config,) = [
        c
        for c in of_kind(objects, "ConfigMap")
        if c["metadata"]["name"] == f"{RELEASE}-conversation"
    ]
    return deployment["spec"]["template"], config["data"]


def test_off_by_default_with_the_key_optional() -> None:
    objects = render(DEFAULTS)
    template, env = conversation(objects)
    assert not [name for name in env if name.startswith("HIKER_AI_")]
    (container,) = template["spec"]["containers"]
    (key,) = [e for e in container["env"] if e["name"] == "HIKER_AI_API_KEY"]
    # A local model server takes no key: the pod starts without one.
    assert key["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "ai-prompt" not in {v["name"] for v in template["spec"]["volumes"]}


def test_every_knob_reaches_conversation_and_the_key_stays_in_the_secret() -> None:
    objects = render(with_overrides(DEFAULTS, **AI_ON))
    template, env = conversation(objects)

    assert env["HIKER_AI_BASE_URL"] == AI_ON["conversation.ai.baseUrl"]
    assert env["HIKER_AI_MODEL"] == "gpt-4o-mini-deployment"
    assert env["HIKER_AI_TRANSCRIBE_MODEL"] == "whisper-1"
    assert env["HIKER_AI_MAX_TOKENS_PER_USER_DAY"] == "20000"
    assert "HIKER_AI_MAX_TOKENS_PER_NUMBER_DAY" not in env
    assert env["HIKER_AI_OVER_BUDGET"] == "handoff"
    assert env["HIKER_AI_SYSTEM_PROMPT_FILE"] == "/etc/hiker-ai/system-prompt.txt"
    # What conversation makes of it (the prompt file aside, which only the pod has).
    settings = load_settings(
        AISettings,
        {k: v for k, v in env.items() if k != "HIKER_AI_SYSTEM_PROMPT_FILE"}
        | {"HIKER_AI_API_KEY": KEY},
    )
    assert settings.ai_enabled
    assert settings.ai_debounce_ms == 1500
    assert settings.ai_timeout_seconds == 60
    assert settings.ai_vision is False

    (secret,) = of_kind(objects, "Secret")
    assert secret["stringData"]["HIKER_AI_API_KEY"] == KEY
    for configmap in of_kind(objects, "ConfigMap"):
        assert KEY not in str(configmap["data"])

    (prompt,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-ai-prompt")
    ]
    assert prompt["data"] == {"system-prompt.txt": PROMPT}
    (container,) = template["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "ai-prompt"]
    assert mount == {"name": "ai-prompt", "mountPath": "/etc/hiker-ai", "readOnly": True}
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "ai-prompt"]
    assert volume["configMap"]["name"] == prompt["metadata"]["name"]
    changed = render(with_overrides(DEFAULTS, **AI_ON | {"conversation.ai.systemPrompt": "Hi"}))
    annotations = template["metadata"]["annotations"]
    assert (
        annotations["checksum/ai-prompt"]
        != (conversation(changed)[0]["metadata"]["annotations"]["checksum/ai-prompt"])
    )


def test_an_existing_prompt_configmap_and_an_existing_secret() -> None:
    values = with_overrides(
        ALL_FEATURES,
        **{
            "conversation.ai.baseUrl": "http://vllm.models:8000/v1",
            "conversation.ai.model": "Qwen/Qwen2.5-7B-Instruct",
            "conversation.ai.existingSystemPromptConfigMap": "shop-prompt",
        },
    )
    objects = render(values)
    template, env = conversation(objects)
    assert env["HIKER_AI_SYSTEM_PROMPT_FILE"] == "/etc/hiker-ai/system-prompt.txt"
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "ai-prompt"]
    assert volume["configMap"]["name"] == "shop-prompt"
    assert not of_kind(objects, "Secret")
    (container,) = template["spec"]["containers"]
    (key,) = [e for e in container["env"] if e["name"] == "HIKER_AI_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"]["name"] == "hiker-credentials"


def test_a_base_url_without_a_model_is_refused_naming_the_value() -> None:
    values = with_overrides(DEFAULTS, **{"conversation.ai.baseUrl": "https://api.openai.com/v1"})
    with pytest.raises(Exception, match=r"conversation\.ai\.model is required"):
        render(values)


def test_the_schema_checks_the_ai_block() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(with_overrides(DEFAULTS, **AI_ON))
        for wrong in (
            {"conversation.ai.modle": "x"},
            {"conversation.ai.overBudget": "ignore"},
            {"conversation.ai.baseUrl": "api.openai.com"},
            {"conversation.ai.debounceMs": -1},
            {"secret.aiKey": "x"},
        ):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(with_overrides(DEFAULTS, **wrong))
