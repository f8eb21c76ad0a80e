"""The circuit breaker of one exporter: stop hammering a backend that keeps failing; the queue keeps the data.

- closed: attempts go through. `open_after` consecutive retryable failures open the circuit.
- open: no attempt is made until `cool_down` has passed since it opened; consumers wait, batches stay queued
  (in memory, bounded by `queue.maxBytes`, or on disk).
- half-open: exactly one attempt, the probe, goes through; the others keep waiting. A success, or any
  answer that is not retryable (the backend is up, it just refused that batch), closes the circuit; a
  retryable failure opens it again for another cool-down.

The circuit also keeps the total time it has spent away from closed (`held_back`), so the retry policy can
leave all of it out of `maxElapsed` — whether a consumer spent it waiting in `admit` or in its own backoff
sleep, which overlaps the cool-down once the backoff reaches `maxInterval`: a dead backend costs queue
space, never the data already accepted.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

#: A cool-down with less than this left is over: not worth a timer (and float noise in the reopen time must
#: not turn into an endless series of zero-length sleeps on a clock that rounds, such as a virtual one).
_MIN_WAIT = 1e-3


class State(enum.IntEnum):
    """Values of the `otlp_agent_exporter_circuit_state` gauge."""

    closed = 0
    open = 1
    half_open = 2


class Circuit:
    """Consecutive-failure circuit breaker with a fixed cool-down; time and sleeping are injectable."""

    def __init__(
        self,
        open_after: int,
        cool_down: float,
        clock: Callable[[], float],
        on_change: Callable[[State], None] = lambda state: None,
    ) -> None:
        self.open_after = open_after
        self.cool_down = cool_down
        self.state = State.closed
        self.failures = 0  # consecutive retryable failures
        self._clock = clock
        self._on_change = on_change
        self._reopen_at = 0.0
        self._changed = asyncio.Event()  # set whenever the probe finishes
        self._held_total = 0.0  # seconds spent open or half-open, up to the last time it closed
        self._held_since = 0.0  # when it last left closed

    def held_back(self) -> float:
        """Seconds this circuit has spent open or half-open since it was made, up to now (monotonic)."""
        if self.state == State.closed:
            return self._held_total
        return self._held_total + self._clock() - self._held_since

    def open_for(self) -> float:
        """Seconds until an open circuit lets the next probe through (0 when it is not open)."""
        return max(0.0, self._reopen_at - self._clock()) if self.state == State.open else 0.0

    async def admit(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Wait until an attempt may be made."""
        while self.state != State.closed:
            if self.state == State.open:
                remaining = self._reopen_at - self._clock()
                if remaining > _MIN_WAIT:
                    await sleep(remaining)
                    continue
                self._set(State.half_open)  # this caller is the probe
                break
            self._changed.clear()
            await self._changed.wait()  # someone else is probing

    def record(self, ok: bool, retryable: bool, server_hint: float | None = None) -> None:
        """The outcome of an attempt admitted by `admit`."""
        if ok or not retryable:
            self.failures = 0
            self._set(State.closed)
            return
        self.failures += 1
        if self.state == State.half_open or self.failures >= self.open_after:
            self._reopen_at = self._clock() + max(self.cool_down, server_hint or 0.0)
            self._set(State.open)

    def abandon(self) -> None:
        """An admitted attempt never finished (cancelled): let the next caller probe at once."""
        if self.state == State.half_open:
            self._reopen_at = self._clock()
            self._set(State.open)

    def _set(self, state: State) -> None:
        if state != self.state:
            if self.state == State.closed:
                self._held_since = self._clock()
            elif state == State.closed:
                self._held_total += self._clock() - self._held_since
            self.state = state
            self._on_change(state)
        self._changed.set()
