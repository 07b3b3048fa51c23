"""What every scenario is given, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import CpuTimes
from benchmarks.sides import Side

# A scenario's result: ``figures`` (label → number, what the report shows and compares, in
# order) and whatever details it keeps in the JSON.
Result = dict[str, Any]


@dataclass
class Context:
    quick: bool
    out: Path
    side: Side
    connections: int = 64  # wrk's
    prefetch: int | None = None  # conversation's and sender's HIKER_PREFETCH; None: default

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full

    def env(self, **extra: str) -> dict[str, str]:
        """Settings for the Hiker services of a pipeline."""
        prefetch = {"HIKER_PREFETCH": str(self.prefetch)} if self.prefetch else {}
        return prefetch | extra


def per_message(
    used: dict[str, CpuTimes], messages: int, seconds: float, processes: tuple[str, ...]
) -> dict[str, Any]:
    """CPU ms per message of each process and of ``processes`` together, and their cores."""
    total = sum(used[name].total for name in processes if name in used)

    def each(value: float) -> float | None:
        return round(value / messages * 1000, 3) if messages else None

    return {
        "ms_per_message": {name: each(times.total) for name, times in used.items()},
        "user_ms_per_message": {name: each(times.user) for name, times in used.items()},
        "total_ms_per_message": each(total),
        "total_cores": round(total / seconds, 3) if seconds else None,
    }
