"""``hiker dev --bot``: finding the bot's files, seeing a save once, and HIKER_BOT_PATH."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from hiker.bot import Bot
from hiker.bot.routing import add_bot_path, load_bot
from hiker.core.settings import ConfigError
from hiker.tools.botwatch import changes, locate, snapshot
from hiker.tools.dev import child_env

BOT = "from hiker.bot import Bot\nbot = Bot()\n"


def touch(path: Path, text: str = "", *, later_by_ns: int = 0) -> None:
    path.write_text(text)
    if later_by_ns:  # file systems with coarse timestamps: make the change visible
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + later_by_ns))


def test_a_plain_module_is_watched_in_its_folder_only(tmp_path: Path) -> None:
    touch(tmp_path / "shop.py", BOT)
    touch(tmp_path / "rules.yaml")
    (tmp_path / "checkout").mkdir()
    touch(tmp_path / "checkout" / "big.py")
    source = locate("shop:bot", [str(tmp_path)])
    assert source.module_file == tmp_path / "shop.py"
    assert set(snapshot(source)) == {tmp_path / "shop.py", tmp_path / "rules.yaml"}


def test_a_package_is_watched_whole_without_being_imported(tmp_path: Path) -> None:
    package = tmp_path / "mybot"
    (package / "handlers").mkdir(parents=True)
    touch(package / "__init__.py", "raise SystemExit('imported')\n")
    touch(package / "app.py", BOT)
    touch(package / "handlers" / "menu.py")
    (package / "__pycache__").mkdir()
    touch(package / "__pycache__" / "app.cpython-311.pyc")
    source = locate("mybot.app:bot", [str(tmp_path)])
    assert source.recursive
    assert source.folder == package
    assert package / "handlers" / "menu.py" in snapshot(source)
    assert not any("__pycache__" in str(path) for path in snapshot(source))


def test_a_module_not_found_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no module 'shopp' in the current directory"):
        locate("shopp:bot", [str(tmp_path)])
    with pytest.raises(ConfigError, match="must look like 'module:bot'"):
        locate("shop", [str(tmp_path)])


async def test_a_burst_of_saves_is_reported_once(tmp_path: Path) -> None:
    touch(tmp_path / "shop.py", BOT)
    touch(tmp_path / "rules.yaml")
    saves = changes(locate("shop:bot", [str(tmp_path)]), poll_seconds=0.05)
    first = asyncio.create_task(anext(saves))
    await asyncio.sleep(0.2)  # the first poll has taken its snapshot
    for step in range(1, 4):
        touch(tmp_path / "shop.py", BOT + f"# {step}\n", later_by_ns=step * 10**9)
        await asyncio.sleep(0.01)
    touch(tmp_path / "rules.yaml", "rules: []\n", later_by_ns=10**9)
    assert await asyncio.wait_for(first, 10) == [tmp_path / "rules.yaml", tmp_path / "shop.py"]
    second = asyncio.create_task(anext(saves))
    await asyncio.sleep(0.3)
    assert not second.done()  # nothing saved since: no second restart
    touch(tmp_path / "shop.py", BOT, later_by_ns=9 * 10**9)
    assert await asyncio.wait_for(second, 10) == [tmp_path / "shop.py"]
    await saves.aclose()


def test_each_child_gets_its_own_metrics_port_from_a_base() -> None:
    assert "HIKER_METRICS_PORT" not in child_env({"HIKER_X": "1"}, "sender")
    ports = [child_env({"HIKER_METRICS_PORT": "19100"}, s)["HIKER_METRICS_PORT"] for s in
             ("graph-mock", "ingress", "conversation", "sender", "api")]  # fmt: skip
    assert ports == ["19100", "19101", "19102", "19103", "19104"]


def test_hiker_bot_path_makes_a_mounted_folder_importable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    touch(tmp_path / "mounted_shop_7.py", BOT)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_bot("mounted_shop_7:bot")
    add_bot_path(tmp_path)
    assert isinstance(load_bot("mounted_shop_7:bot"), Bot)
    sys.modules.pop("mounted_shop_7", None)


def test_hiker_bot_path_that_is_no_folder_refuses_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^HIKER_BOT_PATH is not a directory"):
        add_bot_path(tmp_path / "missing")
