"""Batching per exporter and signal, on serialized bytes.

A batch is a list of serialized Export*ServiceRequest messages; joined, they are one valid request (the
protobuf merge of its parts), so batching never parses or copies items. A batch is emitted when it reaches
maxItems or maxBytes, or `timeout` after its first request; a request larger than the limits is first
split at resource/scope/item boundaries (`wire.split`).

With `timeout: auto` the wait comes from the exporter's `AdaptiveTimeout`, shared by its batchers: each time
a batch is handed to the queue, the lane reports how busy the exporter is, and the wait doubles while the
exporter is busy (a batch already waiting in the queue, or every consumer exporting: the backend is slow or
the load high, so larger batches cost fewer exports), halves while it is idle (nothing queued or in flight:
the data might as well go now), between `minTimeout` and `maxTimeout`; it starts at `minTimeout`. A timer
already running keeps its deadline.

When the exporter learns its backend's size limit (payload too large, see `sender/split.py`), the lane caps
`max_bytes` below `maxBytes` with `cap_bytes`.

A request whose client waits for more than "batched" (delivery durable or endToEnd) asks `add(...,
track=True)` for the futures of the batches its data landed in; one future per batch, shared by every
request in it, resolved by the exporter runtime when the batch is on disk or exported.

Each batch owns one `memory.Lease`: the open batch's lease grows by every request added to it (so a
request's bytes are counted from the moment the lane accepts them), and the lane releases it once, when
the batch's outcome is final. A full batch is handed on from the task of the request that filled it, yet the
hand-over is not that client's: `emit` either puts the batch in the queue at once or continues in a task of
the exporter's own, which the client awaits through `asyncio.shield`. A client that gives up (a gRPC
deadline, a listener stopping) while the queue makes it wait stops waiting, and the batch, which holds other
clients' requests already answered, still reaches the queue. Splitting a large request is per-item Python
work, so it runs on the `inspection` worker thread, never on the event loop; the request's bytes stay
counted meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import memory
from otlp_agent.otlp import inspection, wire


@dataclasses.dataclass
class Batch:
    """Requests of one signal bound for one exporter."""

    signal: Signal
    chunks: list[bytes]
    items: int
    size: int
    created: float = dataclasses.field(default_factory=time.monotonic)
    done: asyncio.Future[None] | None = None  # resolved when waiting clients may be answered
    key: int | None = None  # the persistent queue's row id
    trigger: str = "flush"  # why it left its batcher: size, timeout, or flush (shutdown, reload, split)
    lease: memory.Lease = dataclasses.field(default_factory=memory.no_lease)  # its bytes, until released

    def payload(self) -> bytes:
        """The batch as one serialized request."""
        if len(self.chunks) != 1:
            self.chunks = [b"".join(self.chunks)]
        return self.chunks[0]


_SMALLEST_BATCH = 1024  # bytes: what batch.maxBytes accepts at least


class AdaptiveTimeout:
    """`timeout: auto` for one exporter (see the module docstring); `on_change` hears every new value."""

    def __init__(
        self, settings: spec.BatchSettings, on_change: Callable[[float], None] = lambda seconds: None
    ) -> None:
        self.minimum, self.maximum = settings.timeout_bounds
        self.current = self.minimum
        self._on_change = on_change
        on_change(self.current)

    @classmethod
    def for_settings(
        cls, settings: spec.BatchSettings, on_change: Callable[[float], None] = lambda seconds: None
    ) -> AdaptiveTimeout | None:
        """The adaptive timeout when the settings ask for one, else None."""
        return cls(settings, on_change) if settings.timeout == spec.AUTO else None

    def handed_over(self, waiting: int, in_flight: int, consumers: int) -> None:
        """A batch is being handed to the queue, which holds `waiting` batches; `in_flight` of the
        exporter's `consumers` are exporting."""
        if waiting or in_flight >= consumers:
            current = min(self.maximum, self.current * 2)
        elif not in_flight:
            current = max(self.minimum, self.current / 2)
        else:
            return
        if current != self.current:
            self.current = current
            self._on_change(current)


class Batcher:
    """Accumulates requests into batches and hands each full batch to `emit`."""

    def __init__(
        self,
        signal: Signal,
        settings: spec.BatchSettings,
        emit: Callable[[Batch], Awaitable[None] | None],
        limiter: memory.MemoryLimiter,
        *,
        adaptive: AdaptiveTimeout | None = None,
    ) -> None:
        """`emit` hands a batch on: None when done at once, else an awaitable that finishes it (run as a task
        of its own, shielded from the caller's cancellation). `adaptive`: the exporter's adaptive timeout,
        for `timeout: auto` (required then)."""
        self.signal = signal
        self._limiter = limiter
        self._lease = limiter.lease()  # the open batch's
        self.max_items = settings.max_items
        self.max_bytes = self._configured_max_bytes = settings.max_bytes
        assert (adaptive is None) == (settings.timeout != spec.AUTO), "timeout auto needs an AdaptiveTimeout"
        self._fixed_timeout = settings.timeout if adaptive is None else 0.0
        self._adaptive = adaptive
        self._emit = emit
        self._chunks: list[bytes] = []
        self._items = 0
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._done: asyncio.Future[None] | None = None  # the open batch's future, made on demand
        # Batches taken out of the buffer but not yet handed over (emit in progress): admission counts them,
        # so the queue always has room for everything the agent already said yes to.
        self._emitting_bytes = 0
        self._emitting_items = 0
        self._splitting_bytes = 0  # requests being split on the worker thread
        self._splitting_items = 0

    def cap_bytes(self, cap: int) -> None:
        """Build batches of at most `cap` bytes from now on (never above maxBytes, never below 1 KiB)."""
        self.max_bytes = max(_SMALLEST_BATCH, min(self._configured_max_bytes, cap))

    @property
    def timeout(self) -> float:
        """How long the next partial batch may wait."""
        return self._adaptive.current if self._adaptive is not None else float(self._fixed_timeout)

    @property
    def pending_bytes(self) -> int:
        """Bytes accepted here and not yet in the exporter's queue (buffered or being handed over)."""
        return self._size + self._emitting_bytes + self._splitting_bytes

    @property
    def pending_items(self) -> int:
        return self._items + self._emitting_items + self._splitting_items

    async def add(self, data: bytes, items: int, track: bool = False) -> list[asyncio.Future[None]]:
        """Add one request; awaits only when a full batch is handed on (which may wait for queue space).

        With `track`, returns the futures of the batches holding the request (else an empty list)."""
        futures: list[asyncio.Future[None]] = []
        if items > self.max_items or len(data) > self.max_bytes:
            # The request and its parts (at most as large again) stay counted until every part is in a
            # batch, whose lease then counts it too: erring on the safe side for a moment.
            lease = self._limiter.lease(2 * len(data))
            try:
                for part, part_items in await self._split(data, items):
                    await self._add_one(part, part_items, futures if track else None)
            finally:
                lease.release()
        else:
            await self._add_one(data, items, futures if track else None)
        return futures

    async def _split(self, data: bytes, items: int) -> list[tuple[bytes, int]]:
        """`wire.split` on the worker thread, the request counted as pending meanwhile (for admission)."""
        self._splitting_bytes += len(data)
        self._splitting_items += items
        try:
            return await inspection.off_loop(wire.split, self.signal, data, self.max_items, self.max_bytes)
        finally:
            self._splitting_bytes -= len(data)
            self._splitting_items -= items

    async def _add_one(self, data: bytes, items: int, futures: list[asyncio.Future[None]] | None) -> None:
        # State changes happen before the first await, so pending_bytes is exact whenever others look.
        ready: list[Batch] = []
        if self._chunks and (self._items + items > self.max_items or self._size + len(data) > self.max_bytes):
            ready.append(self._detach("size"))
        self._chunks.append(data)
        self._items += items
        self._size += len(data)
        self._lease.grow(len(data))
        if futures is not None:
            if self._done is None:
                self._done = asyncio.get_running_loop().create_future()
            if not futures or futures[-1] is not self._done:
                futures.append(self._done)
        if self._items >= self.max_items or self._size >= self.max_bytes:
            ready.append(self._detach("size"))
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._on_timeout)
        if not ready:  # the common case: the request only joined the open batch
            return
        # Every ready batch is on its way before the first wait, so a cancel during that wait strands none.
        handing = [started for batch in ready if (started := self._start_hand_over(batch)) is not None]
        for started in handing:
            await asyncio.shield(started)

    def _on_timeout(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush("timeout"))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self, trigger: str = "flush") -> None:
        """Emit what is buffered now, if anything."""
        if self._chunks:
            await self._hand_over(self._detach(trigger))

    def _detach(self, trigger: str) -> Batch:
        """Take the buffered requests out as a batch (synchronously), counting it as being handed over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = Batch(
            self.signal,
            self._chunks,
            self._items,
            self._size,
            done=self._done,
            lease=self._lease,
            trigger=trigger,
        )
        self._chunks, self._items, self._size, self._done = [], 0, 0, None
        self._lease = self._limiter.lease()
        self._emitting_bytes += batch.size
        self._emitting_items += batch.items
        return batch

    async def _hand_over(self, batch: Batch) -> None:
        started = self._start_hand_over(batch)
        if started is not None:
            await asyncio.shield(started)

    def _start_hand_over(self, batch: Batch) -> asyncio.Future[None] | None:
        """Hand `batch` on: None when done, else the exporter's task finishing it (the caller may stop
        waiting for it; it goes on). The batch counts as being handed over until then."""
        try:
            pending = self._emit(batch)
        except BaseException:
            self._handed_over(batch)
            raise
        if pending is None:
            self._handed_over(batch)
            return None
        started = asyncio.ensure_future(pending)
        started.add_done_callback(functools.partial(self._handed_over, batch))
        return started

    def _handed_over(self, batch: Batch, _: object = None) -> None:
        self._emitting_bytes -= batch.size
        self._emitting_items -= batch.items

    async def close(self) -> None:
        """Flush and wait for timer-triggered flushes in progress."""
        await self.flush()
        if self._pending:
            await asyncio.gather(*self._pending)
