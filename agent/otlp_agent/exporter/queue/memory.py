"""The bounded in-memory queue between an exporter's batchers and its senders (FIFO of batches).

When the lane stops, what is left is dropped and counted (`close`); the persistent queue keeps it instead.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.queue.base import BoundedQueue, Changed


class MemoryQueue(BoundedQueue):
    """FIFO of batches with a bound and a policy for when it is reached."""

    persistent = False

    def __init__(self, settings: spec.Queue, on_drop: Callable[[Batch, str], None]) -> None:
        self.max_bytes = settings.max_bytes
        self.max_items = settings.max_items
        self.when_full = settings.when_full
        self._on_drop = on_drop
        self._batches: collections.deque[Batch] = collections.deque()
        self.bytes = 0  # waiting and being exported
        self.items = 0
        self.blocked_producers = 0  # producers waiting for space under the `block` policy
        self._changed = Changed()

    def __len__(self) -> int:
        return len(self._batches)

    def put_nowait(self, batch: Batch) -> bool | None:
        if self.blocked_producers:  # they came first
            return None
        room = self._room_now(batch, self._evict_oldest)
        return None if room is None else self._store(batch, room)

    async def put(self, batch: Batch) -> bool:
        return self._store(batch, await self._make_room(batch, self._evict_oldest))

    def _store(self, batch: Batch, room: bool) -> bool:
        if not room:
            self._on_drop(batch, self._no_room_reason())
            return False
        self._batches.append(batch)
        self.bytes += batch.size
        self.items += batch.items
        self._changed.notify_all()
        return True

    def _evict_oldest(self) -> bool:
        if not self._batches:
            return False
        self._remove(self._batches.popleft(), "queue_full_drop_oldest")
        return True

    async def get(self) -> Batch:
        while not self._batches:
            await self._changed.wait()
        return self._batches.popleft()

    async def done(self, batch: Batch) -> None:
        self.bytes -= batch.size
        self.items -= batch.items
        self._room_made()

    async def requeue(self, batch: Batch) -> None:
        self._batches.append(batch)
        self._changed.notify_all()

    def _remove(self, batch: Batch, reason: str) -> None:
        self.bytes -= batch.size
        self.items -= batch.items
        self._on_drop(batch, reason)

    def drain_all(self, reason: str) -> None:
        """Drop everything waiting, counting it."""
        while self._batches:
            self._remove(self._batches.popleft(), reason)

    async def close(self) -> int:
        left = len(self._batches)
        self.drain_all("shutdown")
        return left
