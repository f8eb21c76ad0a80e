"""What every queue offers the exporter lane (`BatchQueue`), and the bound both queues keep (`BoundedQueue`):
bytes and items, with the `whenFull` policy deciding what happens when a batch does not fit.

`refuse` drops nothing in the queue (admission, `ExporterLane.refuses`, reserves room before a client is
answered, so the client keeps what does not fit); `dropOldest` evicts the oldest batch (counted); `block`
makes the producer wait for space, which holds the client's request open (backpressure).
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
    bytes: int
    items: int
    max_bytes: int
    max_items: int
    blocked_producers: int
    persistent: bool

    def __len__(self) -> int: ...

    def is_full(self) -> bool: ...

    async def put(self, batch: Batch) -> bool:
        """Store `batch` (True), or drop it (False, after `on_drop`): only a persistent queue that cannot
        write to disk drops what it is handed; the policies evict older batches instead."""
        ...

    async def get(self) -> Batch: ...

    async def done(self, batch: Batch) -> None:
        """`batch`'s outcome is final (exported, rejected or given up): forget it for good."""
        ...

    async def close(self) -> int:
        """At stop: a memory queue drops (and counts) the rest; a persistent one leaves it on disk.

        Returns the number of batches left behind."""
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
        """Batches held (each queue counts its own)."""

    def is_full(self) -> bool:
        return self.bytes >= self.max_bytes or self.items >= self.max_items

    def _fits(self, batch: Batch) -> bool:
        # Under `refuse` the bound is kept at the door (ExporterRuntime.refuses reserves room for everything
        # accepted), so what reaches the queue was promised a place and is never dropped here. An empty
        # queue takes any batch, or an oversized one could never be sent.
        if not len(self) or self.when_full == spec.WhenFull.refuse:
            return True
        return self.bytes + batch.size <= self.max_bytes and self.items + batch.items <= self.max_items

    async def _make_room(self, batch: Batch, evict_oldest: Callable[[], None]) -> None:
        """Until `batch` fits: wait for a consumer (`block`) or evict the oldest batch (`dropOldest`).

        Called with `_changed` held. Under `refuse` every batch fits (see `_fits`), so nothing waits."""
        while not self._fits(batch):
            if self.when_full == spec.WhenFull.block:
                self.blocked_producers += 1
                try:
                    await self._changed.wait()
                finally:
                    self.blocked_producers -= 1
            else:
                evict_oldest()
