"""The delays that name wait queues: one geometric ladder, 250 ms · 2^(k/4) (steps of ~19 %).

RabbitMQ expires messages only at a queue's head, so a wait queue holds one delay value; any
delay snapped onto this ladder keeps the number of queues small whatever the delays asked
for (retries with jitter, reminders of any length).
"""

from __future__ import annotations

import math
from typing import Final, Literal

LADDER_MIN_MS: Final = 250
LADDER_STEPS_PER_DOUBLING: Final = 4


def snap_ms(delay_seconds: float, *, to: Literal["nearest", "up", "down"] = "nearest") -> int:
    """``delay_seconds`` as a rung of the ladder (in ms): the nearest, or never less / more."""
    delay_ms = max(float(LADDER_MIN_MS), delay_seconds * 1000)
    exact = math.log2(delay_ms / LADDER_MIN_MS) * LADDER_STEPS_PER_DOUBLING
    if to == "up":
        step = math.ceil(exact - 1e-9)
    elif to == "down":
        step = math.floor(exact + 1e-9)
    else:
        step = round(exact)
    return round(LADDER_MIN_MS * 2 ** (step / LADDER_STEPS_PER_DOUBLING))
