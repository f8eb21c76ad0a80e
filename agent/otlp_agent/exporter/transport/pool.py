"""A pool of clients (aiohttp sessions, gRPC channels) for one exporter endpoint: `exporters[].connections`.

Each slot holds at most one client, opened when a request first needs it. A request leases the slot with
the fewest requests in flight (ties go round robin, so batches spread over every connection); a slot takes
at most `max_in_flight` requests, and when every slot is full the request waits for one to free up (its
wait is measured). A client that carried nothing for `idle_timeout` is closed by a timer and opened again
when needed; `retire_all` swaps every client for a fresh one (rotated TLS files) and lets the old ones
finish what they carry. Without `connections`, a transport uses one slot with no in-flight bound: today's
single session or channel.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from otlp_agent.telemetry.metrics import AgentMetrics

Client = TypeVar("Client")


@dataclasses.dataclass
class _Slot(Generic[Client]):
    index: int
    client: Client | None = None
    in_flight: int = 0
    idle_timer: asyncio.TimerHandle | None = None


class Pool(Generic[Client]):
    """`count` slots of at most `max_in_flight` requests each (None: unbounded)."""

    def __init__(
        self,
        count: int,
        max_in_flight: int | None,
        idle_timeout: float | None,
        open_client: Callable[[], Client],
        close_client: Callable[[Client], Coroutine[Any, Any, None]],
        exporter: str = "",
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [_Slot[Client](index) for index in range(count)]
        self._max_in_flight = max_in_flight
        self._idle_timeout = idle_timeout
        self._open = open_client
        self._close = close_client
        self._exporter = exporter
        self._metrics = metrics
        self._clock = clock
        self._next = 0  # round-robin start for ties
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Client]:
        """A client with room for one more request, held for the duration of the `async with`."""
        # Requests already waiting go first: a newcomer must not take the slot a waiter was woken for.
        slot = (None if self._waiters else self._free_slot()) or await self._wait_for_slot()
        slot.in_flight += 1
        if slot.idle_timer is not None:
            slot.idle_timer.cancel()
            slot.idle_timer = None
        if slot.client is None:
            slot.client = self._open()
            self._count("opened")
        self._report(slot)
        try:
            yield slot.client
        finally:
            slot.in_flight -= 1
            self._report(slot)
            if slot.in_flight == 0 and self._idle_timeout is not None:
                loop = asyncio.get_running_loop()
                slot.idle_timer = loop.call_later(self._idle_timeout, self._expire, slot)
            self._wake_one()

    def _free_slot(self) -> _Slot[Client] | None:
        """The slot with the fewest requests in flight and room for one more; ties round robin."""
        count = len(self._slots)
        order = [self._slots[(self._next + step) % count] for step in range(count)]
        best = min(order, key=lambda slot: slot.in_flight)
        if self._max_in_flight is not None and best.in_flight >= self._max_in_flight:
            return None
        self._next = (best.index + 1) % count
        return best

    async def _wait_for_slot(self) -> _Slot[Client]:
        """Wait in line (first come, first served) until a slot has room."""
        began = self._clock()
        first = True
        while True:
            waiter = asyncio.get_running_loop().create_future()
            if first:
                self._waiters.append(waiter)
            else:
                self._waiters.appendleft(waiter)  # woken but beaten to it: keep the place in line
            first = False
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: pass the turn on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            slot = self._free_slot()
            if slot is not None:
                break
        if self._metrics is not None:
            self._metrics.pool_wait.labels(self._exporter).observe(self._clock() - began)
        return slot

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expire(self, slot: _Slot[Client]) -> None:
        """Idle timer: close the slot's client if it still carries nothing."""
        slot.idle_timer = None
        if slot.in_flight or slot.client is None:
            return
        self._retire(slot)
        self._count("recycled")

    def _retire(self, slot: _Slot[Client]) -> None:
        client, slot.client = slot.client, None
        self._report(slot)
        if client is not None:
            task = asyncio.get_running_loop().create_task(self._close(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def retire_all(self) -> None:
        """Open fresh clients for the next requests; the old ones close once their requests are done (the
        close function waits for them)."""
        for slot in self._slots:
            self._retire(slot)

    @property
    def open_clients(self) -> int:
        return sum(1 for slot in self._slots if slot.client is not None)

    def in_flight(self) -> list[int]:
        return [slot.in_flight for slot in self._slots]

    async def close(self) -> None:
        for slot in self._slots:
            if slot.idle_timer is not None:
                slot.idle_timer.cancel()
                slot.idle_timer = None
            self._retire(slot)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _report(self, slot: _Slot[Client]) -> None:
        if self._metrics is None:
            return
        self._metrics.pool_open.labels(self._exporter).set(self.open_clients)
        self._metrics.pool_in_flight.labels(self._exporter, str(slot.index)).set(slot.in_flight)

    def _count(self, event: str) -> None:
        if self._metrics is not None:
            self._metrics.pool_connections.labels(self._exporter, event).inc()
