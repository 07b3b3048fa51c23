"""Handing results to callers who wait on a shared piece of work (a Redis batch, a bundle)."""

from __future__ import annotations

import asyncio
from typing import Any


def settle(
    waiter: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Give ``waiter`` its result or error, unless its caller gave up (was cancelled) meanwhile."""
    if waiter.done():
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)
