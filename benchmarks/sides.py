"""Which code a run measures: the current tree, or the services of a baseline commit."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"


@dataclass(frozen=True)
class Side:
    name: str  # "baseline" or "current"
    label: str  # what the report calls it: a commit, or the working tree
    services: Path  # put first on the services' PYTHONPATH


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def current_side() -> Side:
    head = _git("rev-parse", "--short=10", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "services"))
    return Side("current", f"{head}{' + uncommitted changes' if dirty else ''}", ROOT / "services")


@contextlib.contextmanager
def baseline_side(ref: str) -> Iterator[Side]:
    """REF's ``services/`` exported with ``git archive`` (no worktree or ref is added to the
    repository) under bench-results/, deleted afterwards."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", sha)
    target = RESULTS_DIR / f"baseline-{sha[:12]}-{uuid.uuid4().hex[:6]}"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "services"],
        capture_output=True,
        check=True,
    ).stdout
    target.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        yield Side("baseline", f"{ref} ({sha[:10]}: {subject[:60]})", target / "services")
    finally:
        subprocess.run(["rm", "-rf", str(target)], check=False)


def check_side(side: Side) -> None:
    """Refuse to measure when a service started for ``side`` would import another ``hiker``
    (an editable install elsewhere winning over PYTHONPATH)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import hiker; print(hiker.__file__)"],
        env={**os.environ, "PYTHONPATH": str(side.services)},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    resolved = Path(probe.stdout.strip()).resolve()
    if not resolved.is_relative_to(side.services.resolve()):
        raise SystemExit(f"the {side.name} services would run {resolved}, not {side.services}")
