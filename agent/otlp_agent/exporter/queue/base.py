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
"""

from __future__ import annotations

import abc
import asyncio
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

    async def put(self, batch: Batch) -> bool:
        """Store `batch` (True), or drop it (False, after `on_drop`): a persistent queue that cannot write
        to disk, or `dropOldest` when batches being exported leave no room."""
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


class BoundedQueue(abc.ABC):
    """The bound both queues keep, in bytes and items, and whether a batch fits under the policy."""

    max_bytes: int
    max_items: int
    when_full: spec.WhenFull
    bytes: int
    items: int
    blocked_producers: int
    _changed: asyncio.Condition

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

    async def _room_made(self) -> None:
        """Wake producers waiting for room (`block`), if any: consumers waiting for batches need not wake."""
        if self.blocked_producers:
            async with self._changed:
                self._changed.notify_all()

    async def _make_room(self, batch: Batch, evict_oldest: Callable[[], bool]) -> bool:
        """Until `batch` fits: wait for a consumer (`block`) or evict the oldest waiting batch (`dropOldest`);
        False when nothing is left to evict and it still does not fit (batches being exported hold the
        room). `evict_oldest` returns False when no batch is waiting.

        Called with `_changed` held. Under `refuse` every batch fits (see `_fits`), so nothing waits."""
        while not self._fits(batch):
            if self.when_full == spec.WhenFull.block:
                self.blocked_producers += 1
                try:
                    await self._changed.wait()
                finally:
                    self.blocked_producers -= 1
            elif not evict_oldest():
                return False
        return True
