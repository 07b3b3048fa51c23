"""``--baseline REF``: the same scenarios on the services of commit REF, interleaved with the
current tree (A B A B ...), each run in a child process whose ``hiker`` is that side's.

REF's ``services/`` is exported with ``git archive`` into ``bench-results/baseline-<sha>/``
(read-only use of the repository: no worktree or ref is added to it) and deleted at the end,
unless it was there before this run. Both sides run with this venv's Python, so they share the
dependencies; ``PYTHONPATH`` picks the code. The harness (this package) is the current tree's on
both sides: what differs is only the code measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import processes
from benchmarks.processes import RESULTS_DIR, ROOT, log


@dataclass(frozen=True)
class Side:
    name: str  # "baseline" or "current"
    label: str  # what the report calls it: a commit, or the working tree
    services: Path


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def current_side() -> Side:
    head = _git("rev-parse", "--short=10", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "services"))
    return Side("current", f"{head}{' + uncommitted changes' if dirty else ''}", ROOT / "services")


@contextlib.contextmanager
def baseline_side(ref: str) -> Iterator[Side]:
    """REF's services exported for the run; removed afterwards when this run created them."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", sha)
    target = RESULTS_DIR / f"baseline-{sha[:12]}"
    created = not target.exists()

    def remove() -> None:
        processes.done(remove)
        shutil.rmtree(target, ignore_errors=True)

    if created:
        processes.on_exit(remove)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "services"],
            capture_output=True,
            check=True,
        ).stdout
        target.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        log(f"baseline {ref} = {sha[:10]} ({subject}) exported to {target}")
    else:
        log(f"baseline {ref} = {sha[:10]}: using {target} as it is (not created by this run)")
    try:
        yield Side("baseline", f"{ref} ({sha[:10]}: {subject})", target / "services")
    finally:
        if created:
            remove()


def run_side(side: Side, scenario: str, out: Path, passthrough: list[str]) -> dict[str, Any]:
    """One scenario in a child harness whose ``hiker`` is ``side``'s; its result dict."""
    out.mkdir(parents=True, exist_ok=True)
    result_file = out / "result.json"
    argv = [sys.executable, "-m", "benchmarks", "--side", side.name, "--only", scenario]
    argv += ["--out", str(out), "--result", str(result_file), *passthrough]
    env = {**os.environ, "PYTHONPATH": str(side.services)}
    log(f"--- {scenario} on {side.name}: {side.label}")
    child = subprocess.Popen(argv, env=env, cwd=ROOT)
    try:
        child.wait()
    except BaseException:
        # Ctrl-C reached the child too (same process group), a SIGTERM maybe only this one:
        # the child stops at the first of them and cleans up its services, vhosts and keys.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(180)
        raise
    if not result_file.exists():
        return {"error": f"the {side.name} run exited with {child.returncode} and no result"}
    reported: dict[str, Any] = json.loads(result_file.read_text())
    result: dict[str, Any] = reported["scenarios"].get(scenario, {"error": "no result"})
    result["hiker_file"] = reported.get("hiker_file")
    return result


def median_result(runs: list[Any]) -> Any:
    """The element-wise median of several runs' results: numbers by their median (of the runs
    that have one), dicts key by key, lists of equal length item by item; anything else (text,
    flags) from the first run."""
    runs = [r for r in runs if not (isinstance(r, dict) and "error" in r)] or runs
    first = runs[0]
    if len(runs) == 1:
        return first
    numbers = [r for r in runs if _is_number(r)]
    if numbers and all(r is None or _is_number(r) for r in runs):
        middle = statistics.median(numbers)
        if all(isinstance(r, int) for r in numbers) and middle == int(middle):
            return int(middle)
        return round(middle, 3)
    if all(isinstance(r, dict) for r in runs):
        return {
            key: median_result([r[key] for r in runs]) if all(key in r for r in runs) else value
            for key, value in first.items()
        }
    if all(isinstance(r, list) and len(r) == len(first) for r in runs):
        return [median_result(list(items)) for items in zip(*runs, strict=True)]
    return first


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
