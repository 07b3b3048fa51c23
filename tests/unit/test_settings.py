from __future__ import annotations

from pathlib import Path

import pytest

from hiker.core.addresses import Node
from hiker.core.settings import (
    CommonSettings,
    ConfigError,
    ConversationSettings,
    IngressSettings,
    SenderSettings,
    load_settings,
)

# Secrets as long as real ones (the rules on them: tests/unit/test_secret_settings.py).
APP_SECRET = "5f1c0e6b2a9d4e7c8b3a1f0e6d2c9b4a"
VERIFY_TOKEN = "verify-token-of-these-tests"
INGRESS_ENV = {"HIKER_APP_SECRET": APP_SECRET, "HIKER_VERIFY_TOKEN": VERIFY_TOKEN}


def access_token(tag: str) -> str:
    """A Graph-token-sized value that shows ``tag`` (which test put it where)."""
    return f"EAA{tag}-" + "0123456789abcdef" * 4


def test_missing_required_variables_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(IngressSettings, {})
    message = str(caught.value)
    assert "HIKER_APP_SECRET is required" in message
    assert "HIKER_VERIFY_TOKEN is required" in message


def test_malformed_values_are_named_without_echoing_them() -> None:
    env = {"HIKER_ACCESS_TOKEN": access_token("t"), "HIKER_AMQP_URL": "http://user:hunter2@broker/"}
    with pytest.raises(ConfigError) as caught:
        load_settings(SenderSettings, env)
    assert "HIKER_AMQP_URL is invalid" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_numbers_are_validated() -> None:
    with pytest.raises(ConfigError, match="HIKER_IDLE_TIMEOUT_SECONDS is invalid"):
        load_settings(ConversationSettings, {"HIKER_IDLE_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="HIKER_IDLE_TIMEOUT_SECONDS is invalid"):
        load_settings(ConversationSettings, {"HIKER_IDLE_TIMEOUT_SECONDS": "-1"})


def test_a_responder_deadline_must_end_before_its_claim_lease() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            ConversationSettings,
            {"HIKER_RESPONDER_TIMEOUT_SECONDS": "30", "HIKER_CLAIM_LEASE_SECONDS": "30"},
        )
    assert "HIKER_RESPONDER_TIMEOUT_SECONDS" in str(caught.value)
    assert "HIKER_CLAIM_LEASE_SECONDS" in str(caught.value)
    assert load_settings(ConversationSettings, {}).responder_deadline_seconds == 20.0
    short = load_settings(ConversationSettings, {"HIKER_CLAIM_LEASE_SECONDS": "3"})
    assert short.responder_deadline_seconds == 2.0  # unset: within any lease
    chosen = {"HIKER_RESPONDER_TIMEOUT_SECONDS": "50", "HIKER_CLAIM_LEASE_SECONDS": "60"}
    assert load_settings(ConversationSettings, chosen).responder_deadline_seconds == 50.0


def test_defaults_and_fractions() -> None:
    settings = load_settings(ConversationSettings, {"HIKER_IDLE_TIMEOUT_SECONDS": "0.5"})
    assert settings.idle_timeout_seconds == 0.5
    assert settings.followup_text == "are you there"
    assert settings.metrics_port == 9102
    sender = load_settings(SenderSettings, {"HIKER_ACCESS_TOKEN": access_token("secret")})
    assert sender.send_rate_per_second == 80
    assert str(sender.graph_base_url) == "https://graph.facebook.com/"


def test_secrets_do_not_show_in_repr() -> None:
    settings = load_settings(IngressSettings, INGRESS_ENV)
    assert APP_SECRET not in repr(settings)
    assert VERIFY_TOKEN not in repr(settings)
    assert "guest:guest" not in repr(settings)


def test_each_service_has_its_own_metrics_port() -> None:
    ports = {
        load_settings(IngressSettings, INGRESS_ENV).metrics_port,
        load_settings(ConversationSettings, {}).metrics_port,
        load_settings(SenderSettings, {"HIKER_ACCESS_TOKEN": access_token("c")}).metrics_port,
    }
    assert len(ports) == 3


def test_a_sender_without_any_token_names_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HIKER_ACCESS_TOKEN is required but not set"):
        load_settings(SenderSettings, {})
    with pytest.raises(ConfigError) as caught:
        load_settings(SenderSettings, {"HIKER_ACCESS_TOKENS": "1001:EAAsecret"})
    assert "HIKER_ACCESS_TOKENS is invalid" in str(caught.value)
    assert "EAAsecret" not in str(caught.value)
    with pytest.raises(ConfigError, match="HIKER_ACCESS_TOKENS_DIR is invalid"):
        load_settings(SenderSettings, {"HIKER_ACCESS_TOKENS_DIR": str(tmp_path / "nowhere")})


def test_tokens_per_phone_number_from_a_list_and_from_files(tmp_path: Path) -> None:
    (tmp_path / "1002").write_text(access_token("file2") + "\n")
    (tmp_path / "1003").write_text(access_token("file3"))
    (tmp_path / "..data").mkdir()  # what a mounted Kubernetes Secret also holds
    settings = load_settings(
        SenderSettings,
        {
            "HIKER_ACCESS_TOKEN": access_token("default"),
            "HIKER_ACCESS_TOKENS": f"1001={access_token('list1')}, 1003={access_token('list3')}",
            "HIKER_ACCESS_TOKENS_DIR": str(tmp_path),
        },
    )
    tokens = settings.tokens()
    assert tokens.numbers == ["1001", "1002", "1003"]
    found = {n: tokens.for_number(n) for n in ("1001", "1002", "1003", "9999")}
    assert {n: t.get_secret_value() for n, t in found.items() if t} == {
        "1001": access_token("list1"),
        "1002": access_token("file2"),
        "1003": access_token("list3"),  # the list wins over a file
        "9999": access_token("default"),
    }
    only_files = load_settings(SenderSettings, {"HIKER_ACCESS_TOKENS_DIR": str(tmp_path)})
    assert only_files.tokens().for_number("9999") is None


def test_a_broker_url_may_list_the_nodes_of_a_cluster() -> None:
    url = "amqp://hiker:hunter2@h1:5672,h2:5672,h3:5672/hiker"
    assert load_settings(CommonSettings, {"HIKER_AMQP_URL": url}).amqp_url.get_secret_value() == url
    with pytest.raises(ConfigError) as caught:
        load_settings(CommonSettings, {"HIKER_AMQP_URL": "amqp://hiker:hunter2@h1,h2:x/v"})
    assert "HIKER_AMQP_URL is invalid: Value error, entry 2 of 2" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_quorum_group_size_is_optional_and_positive() -> None:
    assert load_settings(CommonSettings, {}).amqp_quorum_group_size is None
    given = load_settings(CommonSettings, {"HIKER_AMQP_QUORUM_GROUP_SIZE": "3"})
    assert given.amqp_quorum_group_size == 3
    with pytest.raises(ConfigError, match="HIKER_AMQP_QUORUM_GROUP_SIZE is invalid"):
        load_settings(CommonSettings, {"HIKER_AMQP_QUORUM_GROUP_SIZE": "0"})


def test_sentinels_name_the_primary_with_their_own_password() -> None:
    env = {
        "HIKER_REDIS_URL": "rediss://:data-secret@ignored:6379/2",
        "HIKER_REDIS_SENTINELS": "s1:26380, s2",
        "HIKER_REDIS_SENTINEL_MASTER": "mymaster",
        "HIKER_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
        "HIKER_REDIS_PASSWORD": "other-data-secret",
    }
    target = load_settings(CommonSettings, env).redis_target()
    assert target.sentinels == (Node("s1", 26380), Node("s2", 26379))
    assert (target.sentinel_master, target.sentinel_password) == ("mymaster", "sentinel-secret")
    assert target.password == "other-data-secret"
    assert not target.cluster
    shown = f"{target!r} {target.shown()}"
    assert "secret" not in shown
    assert "mymaster" in target.shown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HIKER_REDIS_SENTINELS": "s1"}, "HIKER_REDIS_SENTINEL_MASTER is invalid"),
        ({"HIKER_REDIS_SENTINEL_MASTER": "m"}, "HIKER_REDIS_SENTINEL_MASTER is invalid"),
        ({"HIKER_REDIS_SENTINEL_PASSWORD": "pw"}, "HIKER_REDIS_SENTINEL_PASSWORD is invalid"),
        ({"HIKER_REDIS_SENTINELS": "s1:x", "HIKER_REDIS_SENTINEL_MASTER": "m"},
         "HIKER_REDIS_SENTINELS is invalid"),
        ({"HIKER_REDIS_CLUSTER": "true", "HIKER_REDIS_SENTINELS": "s1",
          "HIKER_REDIS_SENTINEL_MASTER": "m"}, "HIKER_REDIS_SENTINELS is invalid"),
        ({"HIKER_REDIS_CLUSTER": "true", "HIKER_REDIS_URL": "redis://:pw@n1:7000/3"},
         "HIKER_REDIS_CLUSTER is invalid"),
        ({"HIKER_REDIS_CLUSTER": "true", "HIKER_REDIS_URL": "unix:///run/redis.sock"},
         "HIKER_REDIS_CLUSTER is invalid"),
    ],
)  # fmt: skip
def test_inconsistent_redis_variables_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(CommonSettings, env)


def test_a_mistyped_sentinel_list_is_named_without_echoing_it() -> None:
    env = {"HIKER_REDIS_SENTINELS": "s1, default:hunter2@s2", "HIKER_REDIS_SENTINEL_MASTER": "m"}
    with pytest.raises(ConfigError, match=r"HIKER_REDIS_SENTINELS is invalid.*entry 2 of 2") as e:
        load_settings(CommonSettings, env)
    assert "hunter2" not in str(e.value)


def test_a_cluster_never_adopts_legacy_keys() -> None:
    single = load_settings(CommonSettings, {})
    assert single.adopts_legacy_keys
    cluster = load_settings(
        CommonSettings, {"HIKER_REDIS_CLUSTER": "true", "HIKER_REDIS_URL": "redis://n1:7000/0"}
    )
    assert cluster.redis_target().cluster
    assert not cluster.adopts_legacy_keys
    off = load_settings(CommonSettings, {"HIKER_REDIS_ADOPT_LEGACY_KEYS": "false"})
    assert not off.adopts_legacy_keys


def test_app_secrets_for_several_meta_apps_or_a_rotation() -> None:
    old, new, other = (
        "9f2c4e1a7b3d5f60" * 2,
        "4d8b1e6a2c9f7305" * 2,
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    )
    base = {"HIKER_VERIFY_TOKEN": "verify-token-0123456789"}
    both = load_settings(
        IngressSettings,
        {**base, "HIKER_APP_SECRET": old, "HIKER_APP_SECRETS": f"{new}, {other}\n"},
    )
    assert [s.get_secret_value() for s in both.signing_secrets()] == [old, new, other]
    alone = load_settings(IngressSettings, {**base, "HIKER_APP_SECRETS": f"{new},{new}"})
    assert [s.get_secret_value() for s in alone.signing_secrets()] == [new]
    single = load_settings(IngressSettings, {**base, "HIKER_APP_SECRET": old})
    assert [s.get_secret_value() for s in single.signing_secrets()] == [old]


def test_each_listed_app_secret_meets_the_secret_policy() -> None:
    good = "9f2c4e1a7b3d5f60" * 2
    env = {"HIKER_VERIFY_TOKEN": "verify-token-0123456789", "HIKER_APP_SECRETS": f"{good},short"}
    with pytest.raises(ConfigError) as caught:
        load_settings(IngressSettings, env)
    assert "HIKER_APP_SECRETS (entry 2) is shorter than" in str(caught.value)
    assert "short" not in str(caught.value).replace("shorter", "")


def test_a_bad_app_secret_list_names_the_variable_and_entry_never_a_value() -> None:
    env = {"HIKER_VERIFY_TOKEN": "v", "HIKER_APP_SECRETS": "first-secret,,third-secret"}
    with pytest.raises(ConfigError) as caught:
        load_settings(IngressSettings, env)
    message = str(caught.value)
    assert "HIKER_APP_SECRETS is invalid" in message
    assert "entry 2 is empty" in message
    assert "first-secret" not in message
    assert "third-secret" not in message
    # The list's own error says enough: no second one about HIKER_APP_SECRET.
    assert "HIKER_APP_SECRET " not in message
    for blank in ({}, {"HIKER_APP_SECRET": "", "HIKER_APP_SECRETS": ""}):
        with pytest.raises(ConfigError, match="HIKER_APP_SECRET is required but not set"):
            load_settings(IngressSettings, {"HIKER_VERIFY_TOKEN": "v", **blank})
