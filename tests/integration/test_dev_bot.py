"""``hiker dev --bot``: a bot that does not start leaves the rest running until the next save
starts it again; a bot that cannot be found stops ``hiker dev`` before anything starts."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.devstack import Terminal, dev_env, wait_until_ready

pytestmark = pytest.mark.integration

BROKEN = """from hiker.bot import Bot
bot = Bot()

@bot.on_text("menu")
def menu(msg, conv): ...
"""
FIXED = BROKEN.replace("def menu", "async def menu")


async def test_a_bot_that_fails_to_start_is_started_again_by_the_fix(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    metrics_base, env = dev_env(tmp_path, amqp_url, redis_url, redis_prefix)
    (tmp_path / "shop.py").write_text(BROKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "dev", "--bot", "shop:bot",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    terminal = Terminal(process)
    try:
        await terminal.wait_for_lines(
            ["dev: conversation exited with 2 (see above); save the bot to start it again"], 0
        )
        assert any("a bot handler is an async def: menu is not" in line for line in terminal.lines)
        # The others stay up for the fix.
        await wait_until_ready(terminal, metrics_base, ("graph-mock", "ingress", "sender"))
        mark = len(terminal.lines)
        (tmp_path / "shop.py").write_text(FIXED)
        await terminal.wait_for_lines(
            ["dev: shop.py changed; restarting conversation", "dev: conversation restarted"], mark
        )
        await wait_until_ready(terminal, metrics_base, ("conversation",))
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0, terminal.shown()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await terminal.reading


async def test_a_bot_not_found_stops_hiker_dev_naming_it(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    _, env = dev_env(tmp_path, amqp_url, redis_url, redis_prefix)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "dev", "--bot", "shopp:bot",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert stderr.decode().strip() == (
        "hiker dev: --bot 'shopp:bot': no module 'shopp' in the current directory "
        "or on the Python path"
    )
    assert "webhook at" not in stdout.decode()  # nothing was started


async def test_a_bot_and_a_responder_together_stop_hiker_dev(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    _, env = dev_env(tmp_path, amqp_url, redis_url, redis_prefix)
    (tmp_path / "shop.py").write_text(FIXED)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "dev", "--bot", "shop:bot",
        cwd=tmp_path, env={**env, "HIKER_RESPONDER": "mine:build"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert stderr.decode().strip() == (
        "hiker dev: --bot and HIKER_RESPONDER are both set: unset HIKER_RESPONDER"
    )
