"""``make run`` points the AI responder at ``hiker aimock`` unless a model API is configured."""

from __future__ import annotations

from hiker.tools.dev import AIMOCK_MODEL, AIMOCK_TRANSCRIBE_MODEL, ORDER, child_env, use_aimock


def test_without_a_model_api_the_stand_in_is_started_and_named() -> None:
    env = {"HIKER_AIMOCK_PORT": "18091"}
    assert use_aimock(env)
    assert env["HIKER_AI_BASE_URL"] == "http://127.0.0.1:18091/v1"
    assert env["HIKER_AI_MODEL"] == AIMOCK_MODEL
    assert env["HIKER_AI_TRANSCRIBE_MODEL"] == AIMOCK_TRANSCRIBE_MODEL


def test_a_configured_model_api_is_left_alone() -> None:
    env = {"HIKER_AI_BASE_URL": "http://127.0.0.1:11434/v1", "HIKER_AI_MODEL": "llama3.2"}
    assert not use_aimock(env)
    assert env == {"HIKER_AI_BASE_URL": "http://127.0.0.1:11434/v1", "HIKER_AI_MODEL": "llama3.2"}


def test_a_model_named_without_a_url_keeps_its_name_on_the_stand_in() -> None:
    env = {"HIKER_AI_MODEL": "gpt-4o-mini"}
    assert use_aimock(env)
    assert env["HIKER_AI_BASE_URL"] == "http://127.0.0.1:8091/v1"
    assert env["HIKER_AI_MODEL"] == "gpt-4o-mini"


def test_the_stand_in_takes_the_metrics_port_after_the_others() -> None:
    ports = [
        int(child_env({"HIKER_METRICS_PORT": "19100"}, s)["HIKER_METRICS_PORT"]) for s in ORDER
    ]
    assert ports == list(range(19100, 19100 + len(ORDER)))
    assert child_env({"HIKER_METRICS_PORT": "19100"}, "aimock")["HIKER_METRICS_PORT"] == "19105"
