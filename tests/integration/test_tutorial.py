"""docs/tutorial.md, done as a reader would: every marked block of the page, in order.

The page marks each fenced block with a comment before it, ``<!-- tutorial: KIND [NAME] -->``:

- ``run``: shell commands, run with bash from where the previous block left off (``cd`` carries
  over), the checkout's virtualenv on ``PATH`` and ``HOME`` a fresh folder;
- ``file NAME``: the file a reader saves, written into the current folder;
- ``start``: the command left running in a terminal (``hiker dev --bot``), stopped by Ctrl-C
  (SIGINT) at the end, which must exit cleanly;
- ``output``: what the ``run`` block before it prints, once the pipeline delivered (re-run until
  it does, or a deadline);
- ``log``: lines the ``start``ed command prints from then on.

The stack runs against the local RabbitMQ (a vhost of its own) and Redis (a prefix of its own)
on free ports: the page's default ports (8080, 8090, the metrics ports) are those of a reader's
machine, given here through the variables ``hiker dev`` and ``hiker simulate`` read, and the
Graph mock's URL on the page is rewritten to its port.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.devstack import Terminal, dev_env, wait_until_ready

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "tutorial.md"
MARKED = re.compile(
    r"<!-- tutorial: (?P<kind>[a-z]+)(?: (?P<name>\S+))? -->\n```[a-z]*\n(?P<body>.*?)^```",
    re.S | re.M,
)
KINDS = {"run", "file", "start", "output", "log"}
DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Block:
    kind: str
    name: str | None
    body: str


def page_blocks() -> list[Block]:
    text = PAGE.read_text()
    return [Block(m["kind"], m["name"], m["body"]) for m in MARKED.finditer(text)]


def test_every_command_on_the_page_is_marked_for_the_test() -> None:
    blocks = page_blocks()
    assert {block.kind for block in blocks} <= KINDS
    text = PAGE.read_text()
    # A fenced block without a marker would be a command (or a file) no test runs.
    assert len(re.findall(r"^```[a-z]+$", text, re.M)) == sum(
        block.kind in {"run", "file", "start"} for block in blocks
    )
    assert [b.kind for b in blocks].count("start") == 1
    pairs = itertools.pairwise(blocks)
    assert all(before.kind == "run" for before, block in pairs if block.kind == "output")


class Reader:
    """The tutorial's terminal: a bash per block, the working directory carried over."""

    def __init__(self, home: Path, env: dict[str, str], mock_port: int) -> None:
        self.cwd = REPO
        self.env = env
        self.home = home
        self.mock_port = mock_port

    def script(self, body: str) -> str:
        return body.replace("127.0.0.1:8090", f"127.0.0.1:{self.mock_port}")

    async def run(self, body: str) -> str:
        where = self.home / ".tutorial-cwd"
        script = f"{self.script(body)}\npwd > {where}\n"
        shell = await asyncio.create_subprocess_exec(
            "bash", "-ec", script, cwd=self.cwd, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(shell.communicate(), 300)
        assert shell.returncode == 0, f"$ {body}\n{stdout.decode()}{stderr.decode()}"
        self.cwd = Path(where.read_text().strip())
        return stdout.decode()

    def save(self, name: str, body: str) -> None:
        (self.cwd / name).write_text(body)


async def test_the_tutorial_runs_as_written(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    metrics_base, env = dev_env(tmp_path, amqp_url, redis_url, redis_prefix)
    mock_port = int(env["HIKER_GRAPH_MOCK_PORT"])
    reader = Reader(tmp_path, env, mock_port)
    terminal: Terminal | None = None
    last_run = ""
    try:
        for block in page_blocks():
            if block.kind == "run":
                last_run = block.body
                await reader.run(block.body)
            elif block.kind == "file":
                assert block.name is not None
                reader.save(block.name, block.body)
            elif block.kind == "start":
                process = await asyncio.create_subprocess_exec(
                    "bash", "-ec", f"exec {reader.script(block.body)}",
                    cwd=reader.cwd, env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                terminal = Terminal(process)
                await wait_until_ready(terminal, metrics_base)
                log_mark = len(terminal.lines)
            elif block.kind == "output":
                await see_output(reader, last_run, block.body, terminal)
            elif block.kind == "log":
                assert terminal is not None, "a log block before the start block"
                await terminal.wait_for_lines(block.body.splitlines(), log_mark)
                log_mark = len(terminal.lines)
        assert terminal is not None
        terminal.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(terminal.process.wait(), 60) == 0, terminal.shown()
    finally:
        if terminal is not None and terminal.process.returncode is None:
            terminal.process.kill()
            await terminal.process.wait()
        if terminal is not None:
            await terminal.reading


async def see_output(
    reader: Reader, command: str, expected: str, terminal: Terminal | None
) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (printed := await reader.run(command)) != expected:
        shown = terminal.shown() if terminal else ""
        assert time.monotonic() < deadline, f"$ {command}\n{printed}!= {expected}\n{shown}"
        await asyncio.sleep(0.3)
