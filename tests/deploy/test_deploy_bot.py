"""A bot of one's own in a container: built into an image ``FROM hiker`` (deploy/bot/Dockerfile)
or its folder mounted on the stock image (deploy/bot/compose.yaml, the chart's
``conversation.bot``), both at the image's HIKER_BOT_PATH. Read statically and rendered; the
images themselves are built and run by ``make test-containers``."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COMPOSE, REPO, compose_cli, of_kind, render, values_file

from hiker.core.settings import ConversationSettings, load_settings

pytestmark = pytest.mark.deploy

BOT_DIR = REPO / "deploy" / "bot"
DEFAULTS = values_file("default-values.yaml")
RELEASE_CONVERSATION = "-conversation"


def image_bot_path() -> str:
    """The HIKER_BOT_PATH the stock image sets."""
    (path,) = re.findall(r"HIKER_BOT_PATH=(\S+)", (REPO / "Dockerfile").read_text())
    return path


def test_the_image_has_an_empty_bot_folder_on_its_bot_path() -> None:
    path = image_bot_path()
    dockerfile = (REPO / "Dockerfile").read_text()
    # Made in the build stage's /opt/hiker, which the runtime stage copies whole.
    assert re.search(rf"RUN python -m venv /opt/hiker && mkdir {path}\n", dockerfile)
    assert path.startswith("/opt/hiker/")
    settings = load_settings(ConversationSettings, {"HIKER_BOT_PATH": path})
    assert settings.bot_path == Path(path)


def test_a_bot_image_is_two_lines_from_hiker() -> None:
    lines = (BOT_DIR / "Dockerfile").read_text().splitlines()
    assert lines == ["FROM hiker:dev", f"COPY . {image_bot_path()}/"]


def _compose_with_the_bot(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [*compose_cli(), "--env-file", ".env.example", "-f", "compose.yaml",
         "-f", str(BOT_DIR / "compose.yaml"), "config", "--format", "json"],
        cwd=COMPOSE, env={**clean, **env}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_compose_mounts_the_bot_folder_on_the_bot_path(tmp_path: Path) -> None:
    result = _compose_with_the_bot(BOT_DIR=str(tmp_path), HIKER_BOT="shop:bot")
    assert result.returncode == 0, result.stderr
    conversation = json.loads(result.stdout)["services"]["conversation"]
    assert conversation["environment"]["HIKER_BOT"] == "shop:bot"
    # The base file's settings and mounts stay: the bot is laid over them.
    assert conversation["environment"]["HIKER_RULES_FILE"] == "/etc/hiker/rules.yaml"
    mounts = {v["target"]: v for v in conversation["volumes"]}
    assert mounts[image_bot_path()]["source"] == str(tmp_path)
    assert mounts[image_bot_path()]["read_only"] is True
    assert "/etc/hiker/rules.yaml" in mounts
    # The image's HIKER_BOT_PATH is not overridden: the mount is where conversation looks.
    assert "HIKER_BOT_PATH" not in conversation["environment"]


@pytest.mark.parametrize("missing", ["BOT_DIR", "HIKER_BOT"])
def test_compose_with_the_bot_names_what_is_missing(tmp_path: Path, missing: str) -> None:
    env = {"BOT_DIR": str(tmp_path), "HIKER_BOT": "shop:bot"}
    del env[missing]
    result = _compose_with_the_bot(**env)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def _conversation(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    (deployment,) = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["name"].endswith(RELEASE_CONVERSATION)
    ]
    (config,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-conversation")
    ]
    return deployment["spec"]["template"], config["data"]


def bot_configmaps(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-bot")]


def with_bot(**bot: Any) -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    values.setdefault("conversation", {})["bot"] = bot
    return values


def test_chart_default_has_no_bot() -> None:
    template, env = _conversation(render(DEFAULTS))
    assert "HIKER_BOT" not in env
    assert "bot" not in {v["name"] for v in template["spec"]["volumes"]}
    values = yaml.safe_load((REPO / "charts" / "hiker" / "values.yaml").read_text())
    assert values["conversation"]["bot"]["path"] == image_bot_path()


def test_chart_bot_built_into_the_image_only_sets_the_environment() -> None:
    template, env = _conversation(render(with_bot(module="shop:bot", path=image_bot_path())))
    assert env["HIKER_BOT"] == "shop:bot"
    assert env["HIKER_BOT_PATH"] == image_bot_path()
    assert "bot" not in {v["name"] for v in template["spec"]["volumes"]}


def test_chart_bot_files_are_mounted_and_roll_the_pods_when_changed() -> None:
    code = "from hiker.bot import Bot\nbot = Bot()\n"
    values = with_bot(module="shop:bot", path="/srv/bot", files={"shop.py": code})
    objects = render(values)
    (configmap,) = bot_configmaps(objects)
    assert configmap["data"] == {"shop.py": code}
    template, env = _conversation(objects)
    assert env["HIKER_BOT_PATH"] == "/srv/bot"
    (container,) = template["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "bot"]
    assert mount == {"name": "bot", "mountPath": "/srv/bot", "readOnly": True}
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "bot"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    # Imported once at start: a change to the code must roll the pods.
    changed = with_bot(module="shop:bot", path="/srv/bot", files={"shop.py": code + "# v2\n"})
    checksum = template["metadata"]["annotations"]["checksum/bot"]
    assert _conversation(render(changed))[0]["metadata"]["annotations"]["checksum/bot"] != checksum
    # Only conversation gets the bot.
    for deployment in of_kind(objects, "Deployment"):
        if not deployment["metadata"]["name"].endswith(RELEASE_CONVERSATION):
            pod = deployment["spec"]["template"]["spec"]
            assert "bot" not in {v["name"] for v in pod["volumes"]}


def test_chart_bot_from_an_existing_configmap() -> None:
    objects = render(with_bot(module="shop:bot", path="/srv/bot", existingConfigMap="my-bot"))
    assert not bot_configmaps(objects)
    template, _ = _conversation(objects)
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "bot"]
    assert volume["configMap"]["name"] == "my-bot"


def test_chart_refuses_a_bot_and_a_responder_together() -> None:
    values = with_bot(module="shop:bot", path="/srv/bot")
    values["conversation"]["responder"] = "mine:build"
    with pytest.raises(Exception, match=r"conversation\.bot\.module and conversation\.responder"):
        render(values)


@pytest.mark.parametrize(
    ("bot", "named"),
    [
        ({"module": "shop"}, "'shop' does not match"),
        ({"path": "relative/bot"}, "'relative/bot' does not match"),
        ({"files": {"../up.py": ""}}, "invalid propertyName '../up.py'"),
        ({"modul": "x:y"}, "'modul' not allowed"),
    ],
    ids=["module-without-attribute", "relative-path", "file-outside", "typo"],
)
def test_values_schema_checks_the_bot_values(bot: dict[str, Any], named: str) -> None:
    import helm_python as helm

    with helm.Chart.load(REPO / "charts" / "hiker") as chart:
        chart.validate_schema(with_bot(module="shop:bot", path="/srv/bot"))
        with pytest.raises(Exception, match=re.escape(named)):
            chart.validate_schema(with_bot(**bot))
