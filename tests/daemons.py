"""Processes a test (or a benchmark) starts and must stop: each in a session of its own, so that
stopping one ends everything it started and nothing else, also when the caller fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support import fail_or_skip


def require(binary: str) -> str:
    """The path of ``binary``; skips the test without it (fails under ``CI``)."""
    found = shutil.which(binary)
    if found is None:
        fail_or_skip(f"needs {binary} to start its own engines")
    return found


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the process's session, SIGKILL after ``grace`` seconds; then SIGKILL to
    whatever the session still holds (an Erlang helper, a child that outlived it)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class Daemons:
    """The processes started through it, stopped newest first by ``stop_all``."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output appended to ``log``."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        stop(process, grace)
        if process in self._running:
            self._running.remove(process)

    def stop_all(self) -> None:
        for process in self._running[::-1]:
            self.stop(process)
