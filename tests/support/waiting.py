"""Await a condition with a timeout (tests never sleep for a fixed time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: How often the condition is checked; the loop keeps running in between.
_POLL_INTERVAL = 0.005


async def eventually(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Return once `condition()` is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(_POLL_INTERVAL)


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """`eventually` for a condition that must itself await (e.g. a connection attempt)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(_POLL_INTERVAL)
