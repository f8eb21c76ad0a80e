"""A clock for tests of time-based policy: it only moves when the code under test sleeps (or the test sets
`now`), so backoff, circuit and rate-limit timing is checked exactly and instantly."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Callable like `time.monotonic`; `sleep` is the matching awaitable and records what was asked."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by `seconds` at once, then yield to the loop once, as any real sleep suspends
        the task (so other tasks run, and a pending cancel is delivered here, as it would be)."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
