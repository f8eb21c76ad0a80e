"""What every queue offers the exporter lane (`BatchQueue`), and the bound both queues keep (`BoundedQueue`):
bytes and items, with the `whenFull` policy deciding what happens when a batch does not fit.

The bound is hard and counts everything the queue holds: batches waiting *and* batches a consumer is
exporting (taken by `get`, until `done` or `requeue`). A batch never exceeds it on its own: the lane caps
its batches at the queue's bounds and admission refuses for good a request that could never fit.

`refuse` drops nothing in the queue (admission, `ExporterLane.room_for`, reserves room before a client is
answered, so the client keeps what does not fit); `dropOldest` evicts the oldest waiting batches (counted),
and drops the new batch itself (counted, reason `queue_full`) in the corner case where batches being
exported leave no room even then; `block` makes the producer wait for space, which holds the client's
request open (backpressure).

Producers are the exporter lane's hand-overs, never a client's task (see `lane`): a client that gives up
while its request waits for room stops waiting, but the batch still goes in. At stop, `stop_waiting` makes
producers still waiting for room give up: their batch is dropped, counted as `shutdown`.

Waiting uses `Changed` rather than an asyncio.Condition, whose `notify` needs its lock held: with `Changed` a
batch that fits is put without an await (`put_nowait`), the lane's fast path.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch


class BatchQueue(Protocol):
    """What the exporter runtime needs from a queue."""

    when_full: spec.WhenFull
    bytes: int  # held: waiting and being exported
    items: int
    max_bytes: int
    max_items: int
    blocked_producers: int
    persistent: bool

    def __len__(self) -> int:
        """Batches waiting (not those being exported)."""
        ...

    def is_full(self) -> bool: ...

    def put_nowait(self, batch: Batch) -> bool | None:
        """`put` when it needs no await: True or False as `put` says; None when it would wait (for room, for
        producers already waiting, or for the disk): then call `put`."""
        ...

    async def put(self, batch: Batch) -> bool:
        """Store `batch` (True), or drop it (False, after `on_drop`): a persistent queue that cannot write
        to disk, `dropOldest` when batches being exported leave no room, or a producer still waiting for
        room at stop (`stop_waiting`)."""
        ...

    def stop_waiting(self) -> None:
        """At stop, before `close`: producers waiting for room give up (their batch dropped, counted as
        `shutdown`), and so does every `put` from now on that would have to wait for room."""
        ...

    async def get(self) -> Batch:
        """The oldest waiting batch; it stays counted in the bound until `done` or `requeue`."""
        ...

    async def done(self, batch: Batch) -> None:
        """`batch`'s outcome is final (exported, rejected, given up or expired): forget it for good."""
        ...

    async def requeue(self, batch: Batch) -> None:
        """`batch` (from `get`) goes back to the end of the queue, to be tried again after the others."""
        ...

    async def close(self) -> int:
        """At stop: a memory queue drops (and counts) the rest; a persistent one leaves it on disk.

        Returns the number of batches left behind (for a persistent queue: every row on disk)."""
        ...


class Changed:
    """Wakes every task waiting for the queue to change; `notify_all` needs no lock and never awaits."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        """Until the next `notify_all` (callers check their condition again: it may still not hold)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled before it was woken
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class BoundedQueue(abc.ABC):
    """The bound both queues keep, in bytes and items, and whether a batch fits under the policy."""

    max_bytes: int
    max_items: int
    when_full: spec.WhenFull
    bytes: int
    items: int
    blocked_producers: int
    _changed: Changed
    _closing: bool = False  # set by `stop_waiting`

    @abc.abstractmethod
    def __len__(self) -> int:
        """Batches waiting (each queue counts its own)."""

    def is_full(self) -> bool:
        return self.bytes >= self.max_bytes or self.items >= self.max_items

    def _fits(self, batch: Batch) -> bool:
        # Under `refuse` the bound is kept at the door (ExporterLane.room_for reserves room for everything
        # accepted), so what reaches the queue was promised a place and is never dropped here.
        if self.when_full == spec.WhenFull.refuse:
            return True
        return self.bytes + batch.size <= self.max_bytes and self.items + batch.items <= self.max_items

    def stop_waiting(self) -> None:
        self._closing = True
        self._changed.notify_all()

    def _room_made(self) -> None:
        """Wake producers waiting for room (`block`), if any: consumers waiting for batches need not wake."""
        if self.blocked_producers:
            self._changed.notify_all()

    def _room_now(self, batch: Batch, evict_oldest: Callable[[], bool]) -> bool | None:
        """Whether `batch` fits, without waiting: True (evicting the oldest waiting batches first under
        `dropOldest`), False when it cannot (`dropOldest` with nothing left to evict: batches being exported
        hold the room; or `block` after `stop_waiting`), None when it must wait for a consumer (`block`).
        `evict_oldest` returns False when no batch is waiting. Under `refuse` every batch fits (`_fits`)."""
        while not self._fits(batch):
            if self.when_full == spec.WhenFull.block:
                return False if self._closing else None
            if not evict_oldest():
                return False
        return True

    async def _make_room(self, batch: Batch, evict_oldest: Callable[[], bool]) -> bool:
        """`_room_now`, waiting for a consumer to make room under `block` (until `stop_waiting`)."""
        while (room := self._room_now(batch, evict_oldest)) is None:
            self.blocked_producers += 1
            try:
                await self._changed.wait()
            finally:
                self.blocked_producers -= 1
        return room

    def _no_room_reason(self) -> str:
        """Why a batch that found no room is dropped."""
        return "shutdown" if self._closing else "queue_full"
