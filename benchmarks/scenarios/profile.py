"""py-spy on every service at once while the whole pipeline takes a steady 600 webhooks/s, and
the share of samples under each library."""

from __future__ import annotations

import collections
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.isolation import Isolation
from benchmarks.measure import Context, fixed_rate
from benchmarks.pipeline import Pipeline


def run(ctx: Context) -> dict[str, Any]:
    """py-spy on every service at once while the whole pipeline takes a steady 600 webhooks/s.

    A steady load below saturation, not a closed loop: each profile then shows what one message
    costs that service, not which process won the fight for the two cores.
    """
    duration = ctx.seconds(8, 20)
    rate = 600.0
    py_spy = ctx.tools_python.parent / "py-spy"
    result: dict[str, Any] = {"rate": rate, "services": {}}
    with (
        Isolation() as iso,
        Pipeline(iso, ctx.out / "logs-profile", prefetch=ctx.prefetch) as pipeline,
    ):
        time.sleep(1)
        spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name in ("ingress", "conversation", "sender"):
            raw = ctx.out / f"profile-{name}.txt"
            argv = [str(py_spy), "record", "--pid", str(pipeline.services[name].pid)]
            argv += ["--duration", str(int(duration - 2)), "--rate", "100"]
            argv += ["--format", "raw", "--output", str(raw)]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spies[name] = (spy, raw)
        result["load"] = fixed_rate(
            ctx, pipeline.webhook_url, rate, duration, "profile-fixed", pipeline
        )
        for name, (spy, raw) in spies.items():
            spy.wait(60)
            if raw.exists():
                result["services"][name] = summarize_profile(raw) | {"raw_profile": str(raw)}
    return result


def summarize_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function, and per area, from py-spy's collapsed stacks."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_time[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count
        areas[_area(frames)] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_pct": share(self_time),
        "inclusive_pct": share(inclusive),
        "areas_pct": share(areas),
    }


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" → "func (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({tail})"


# Where a sample's CPU went: the library of the innermost frame that belongs to one of these.
_AREAS = (
    ("signature (hmac)", ("hiker/core/signature.py", "hmac.py")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/",)),
    ("aio-pika/aiormq/pamqp", ("aio_pika/", "aiormq/", "pamqp/")),
    ("redis client", ("redis/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/", "pythonjsonlogger", "hiker/core/observability.py")),
    ("aiohttp", ("aiohttp/", "multidict/", "yarl/")),
    ("hiker code", ("hiker/",)),
    ("asyncio / event loop", ("asyncio/", "uvloop/", "selectors.py")),
)


def _area(frames: list[str]) -> str:
    """The area of the innermost frame (leaf first) that belongs to one of ``_AREAS``."""
    for frame in reversed(frames):
        for area, needles in _AREAS:
            if any(n in frame for n in needles):
                return area
    return "other"
