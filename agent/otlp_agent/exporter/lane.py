"""One configured exporter at run time: its batchers (one per signal), its queue, and its consumers.

Each exporter has its own queue and consumers, so a slow backend never stalls the others. Every batch
leaves through exactly one outcome — exported, failed (backend said no, or retries gave up), or dropped
(queue policy, queue.maxAge, shutdown) — each counted; a persistent queue's batches may also stay on
disk at stop, for the next start. With delivery durable or endToEnd a batch is never given up by time:
after `retry.maxElapsed` it goes back to the end of the queue (counted in
otlp_agent_export_requeued_batches_total) and waits its turn again.

Batches are capped at the queue's bounds (`queue.maxItems` / `maxBytes`, when smaller than the batch
settings), so one batch always fits the queue; `room_for` tells admission whether a request fits now,
later, or never. A batch's memory is its `Batch.lease` (see `memory`), taken by the batcher and released
once its outcome is final: at the end of `_consume` (unless a memory queue took it back), in
`_dropped_from_queue` for the queue's policies (and for a batch still waiting for room at stop), in `_put`
when the hand-over fails. A persistent queue releases the lease once the batch is on disk and gives the
batch it reads back a lease of its own. Clients waiting on a batch (delivery durable / endToEnd) are
answered here.

A full batch is handed to the queue by `_enqueue`, called from the task of the request that filled it. When
the queue takes it without waiting (a memory queue with room), that is all: no task. When the put must wait
(`whenFull: block` without room, producers already waiting, or a persistent queue's disk write), it runs in
a task of the lane's own (`_put`), which the client awaits through a shield: a client cancelled meanwhile (a
gRPC deadline, a listener stopping at reload or shutdown) stops waiting, but the batch, which holds earlier
requests already answered, still goes in. `flush` and `drain` wait for these tasks; at `stop`, those still
waiting for room give up, their batch counted as dropped (`shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import pathlib
import time

from otlp_agent.api import spec
from otlp_agent.exporter import delivery
from otlp_agent.exporter.batcher import AdaptiveTimeout, Batch, Batcher
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.queue import factory
from otlp_agent.exporter.queue.base import BatchQueue
from otlp_agent.exporter.queue.persistent import PersistentQueue
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.exporter.sender.split import SplittingSender
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.exporter.transport.factory import make_transport
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics


class Room(enum.Enum):
    """Whether a request fits an exporter's queue."""

    yes = "yes"
    full = "full"  # not now (whenFull: refuse); retry later
    never = "never"  # larger than the whole queue: retrying cannot help


# Looking an enum member up costs ~0.2 µs on Python 3.11: the per-request path uses these.
_YES, _FULL, _NEVER = Room.yes, Room.full, Room.never


class ExporterLane:
    """Batchers -> queue -> consumers -> retry sender, for one exporter."""

    def __init__(
        self,
        exporter: spec.Exporter,
        batch: spec.BatchSettings,
        limiter: MemoryLimiter,
        metrics: AgentMetrics,
        transport: Transport | None = None,
        queue_dir: pathlib.Path | None = None,
    ) -> None:
        self.name = exporter.name
        self.signals = frozenset(exporter.signals)
        self.limiter = limiter
        self.metrics = metrics
        self.delivery = exporter.delivery
        self._refuse_when_full = exporter.queue.when_full == spec.WhenFull.refuse
        self._track = exporter.delivery != spec.Delivery.fast
        self.queue: BatchQueue = factory.make_queue(
            exporter, queue_dir, self._dropped_from_queue, self._corrupt, limiter
        )
        capped = batch.model_copy(
            update={
                "max_items": min(batch.max_items, exporter.queue.max_items),
                "max_bytes": min(batch.max_bytes, exporter.queue.max_bytes),
            }
        )
        self.adaptive_timeout = AdaptiveTimeout.for_settings(
            capped, metrics.batch_timeout.labels(self.name).set
        )
        self.batchers = {
            signal: Batcher(signal, capped, self._enqueue, self.limiter, adaptive=self.adaptive_timeout)
            for signal in self.signals
        }
        retry = RetrySender(exporter, transport or make_transport(exporter, metrics), metrics)
        self.sender = SplittingSender(retry, metrics, self._cap_batches)
        self._consumer_count = exporter.queue.consumers
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._raw_bytes = self._wire_bytes = 0  # for the compression ratio
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = False
        self._waited_on: set[asyncio.Future[None]] = set()  # futures of batches clients wait for
        self._putting: set[asyncio.Task[None]] = set()  # hand-overs that had to wait (see `_enqueue`)
        # Requests being split into several batches are only partly in the batchers' counts while their
        # first batches are handed over, so admission counts them whole here until they are in.
        self._arriving_bytes = self._arriving_items = 0

    async def start(self) -> None:
        """Open the queue and start the consumers (before any producer, so nothing waits on a queue nobody
        reads)."""
        if isinstance(self.queue, PersistentQueue):
            await self.queue.open()
            if self.queue.recovered:
                self.metrics.queue_recovered.labels(self.name).inc(self.queue.recovered)
                logs.info(
                    f"exporter {self.name}: resuming {self.queue.recovered} batches from {self.queue.path}",
                    exporter=self.name,
                )
                self._idle.clear()
        self._publish_bounds()
        self._update_gauges()
        loop = asyncio.get_running_loop()
        self._consumers = [
            loop.create_task(self._consume(), name=f"exporter-{self.name}-{i}")
            for i in range(self._consumer_count)
        ]

    def _cap_batches(self, cap: int) -> None:
        """The backend's size limit was learned: batches are built within it (see sender/split.py)."""
        for batcher in self.batchers.values():
            batcher.cap_bytes(cap)

    def room_for(self, size: int, items: int) -> Room:
        """Whether a request of `size` bytes and `items` items may be accepted: never when it is larger than
        the whole queue; under `refuse`, only when the queue has room for it plus everything already
        accepted on its way in (in batchers), or a request answered 200 could later find the queue full."""
        queue = self.queue
        if size > queue.max_bytes or items > queue.max_items:
            return _NEVER
        if not self._refuse_when_full:
            return _YES
        pending_bytes = self._arriving_bytes + sum(b.pending_bytes for b in self.batchers.values())
        pending_items = self._arriving_items + sum(b.pending_items for b in self.batchers.values())
        if queue.bytes + pending_bytes + size > queue.max_bytes:
            return _FULL
        return _FULL if queue.items + pending_items + items > queue.max_items else _YES

    async def accept(self, signal: spec.Signal, data: bytes, items: int) -> list[asyncio.Future[None]]:
        """Batch a request (its bytes count from here: see `Batch.lease`); for durable / endToEnd delivery,
        the futures its client must wait for."""
        batcher = self.batchers[signal]
        if items > batcher.max_items or len(data) > batcher.max_bytes:
            futures = await self._add_split(batcher, data, items)
        else:
            futures = await batcher.add(data, items, self._track)
        self._update_gauges()
        for future in futures:
            if future not in self._waited_on:
                self._waited_on.add(future)
                future.add_done_callback(self._waited_on.discard)
        return futures

    async def _add_split(self, batcher: Batcher, data: bytes, items: int) -> list[asyncio.Future[None]]:
        """A request the batcher splits into several batches, counted whole for admission until it is in
        (for a moment it is counted twice: that errs on the safe side)."""
        self._arriving_bytes += len(data)
        self._arriving_items += items
        try:
            return await batcher.add(data, items, self._track)
        finally:
            self._arriving_bytes -= len(data)
            self._arriving_items -= items

    def abandon_waiters(self, message: str) -> None:
        """Answer every client still waiting on this exporter with a retryable refusal (at shutdown)."""
        for future in list(self._waited_on):
            delivery.settle(future, delivery.not_delivered(message))

    def _enqueue(self, batch: Batch) -> asyncio.Task[None] | None:
        """Hand a full batch to the queue: at once (None), or in a task of the lane's own, returned for the
        batcher to await (see the module docstring)."""
        if self.adaptive_timeout is not None:
            self.adaptive_timeout.handed_over(len(self.queue), self._in_flight, self._consumer_count)
        if self._stopped:  # a request that was still on its way when the lane stopped: counted, not lost
            self._dropped_from_queue(batch, "shutdown")
            return None
        self._idle.clear()
        stored = None if self._putting else self.queue.put_nowait(batch)  # (no overtaking a waiting put)
        if stored is not None:
            self._enqueued(batch, stored)
            return None
        task = asyncio.get_running_loop().create_task(self._put(batch), name=f"exporter-{self.name}-put")
        self._putting.add(task)
        task.add_done_callback(self._put_done)
        return task

    async def _put(self, batch: Batch) -> None:
        try:
            stored = await self.queue.put(batch)
        except Exception as exc:  # a bug must cost one batch, counted, never the lane
            self._count_dropped(batch, "internal_error")
            self._not_queued(batch)
            message = f"exporter {self.name}: cannot queue a batch: {exc!r}"
            logs.event("export_bug", message, exporter=self.name)
            raise
        except BaseException:  # the event loop is being torn down
            self._not_queued(batch)
            raise
        self._enqueued(batch, stored)

    @staticmethod
    def _not_queued(batch: Batch) -> None:
        batch.lease.release()
        delivery.settle(batch.done, delivery.not_delivered("the agent stopped before queueing it"))

    def _put_done(self, task: asyncio.Task[None]) -> None:
        self._putting.discard(task)
        self._check_idle()

    def _enqueued(self, batch: Batch, stored: bool) -> None:
        if stored and self.queue.persistent and self.delivery == spec.Delivery.durable:
            delivery.settle(batch.done)
        self.metrics.batch_sent(self.name, batch.signal.value, batch.items, batch.size, batch.trigger)
        self._update_gauges()

    def _check_idle(self) -> None:
        """`drain` is over once nothing is being exported, waiting in the queue, or on its way into it."""
        if self._in_flight == 0 and not len(self.queue) and not self._putting:
            self._idle.set()

    async def _consume(self) -> None:
        while True:
            batch = await self.queue.get()
            self._in_flight += 1
            self._update_gauges()
            requeued = False
            try:
                result = await self.sender.send(batch)
                requeued = result.gave_up and self.delivery != spec.Delivery.fast
                if requeued:
                    self._requeued(batch, result)
                    await self.queue.requeue(batch)
                else:
                    self._account(batch, result)
                    await self.queue.done(batch)
                    _answer_waiters(batch, result)
            except asyncio.CancelledError:  # stopping while this batch was in flight
                if not self.queue.persistent:  # a persistent queue keeps the row for the next start
                    self._count_dropped(batch, "shutdown")
                delivery.settle(batch.done, delivery.not_delivered("the agent stopped before exporting it"))
                raise
            except Exception as exc:  # a bug must cost one batch, never the consumer
                self._count_dropped(batch, "internal_error")
                delivery.settle(batch.done, delivery.not_delivered("internal error while exporting"))
                logs.event(
                    "export_bug", f"exporter {self.name}: unexpected error {exc!r}", exporter=self.name
                )
                await self.queue.done(batch)
            finally:
                self._in_flight -= 1
                if self.queue.persistent or not requeued:  # a requeued memory batch is still held
                    batch.lease.release()  # otherwise the batch leaves memory here, whatever the outcome
                self._update_gauges()
                self._check_idle()

    def _account(self, batch: Batch, result: ExportResult) -> None:
        signal = batch.signal.value
        m = self.metrics
        if result.ok:
            # Items the splitting sender dropped or failed were counted there.
            m.exported_items.labels(self.name, signal).inc(batch.items - result.rejected - result.dropped)
            m.uncompressed_bytes.labels(self.name).inc(batch.size)
            m.wire_bytes.labels(self.name).inc(result.wire_bytes)
            self._update_ratio(batch.size, result.wire_bytes)
            if result.rejected:
                m.failed_items.labels(self.name, signal, "partial_success").inc(result.rejected)
                logs.event(
                    "partial_success",
                    f"exporter {self.name}: backend rejected {result.rejected} items: {result.message}",
                    exporter=self.name,
                )
            return
        if result.expired:
            self._count_dropped(batch, "max_age")
            return
        reason = "retries_exhausted" if result.retryable or result.gave_up else "rejected"
        m.failed_items.labels(self.name, signal, reason).inc(batch.items)
        logs.event(
            f"export_failed_{self.name}",
            f"exporter {self.name}: {batch.items} items lost: {result.message}",
            exporter=self.name,
        )

    def _requeued(self, batch: Batch, result: ExportResult) -> None:
        self.metrics.requeued_batches.labels(self.name, batch.signal.value).inc()
        logs.event(
            f"export_requeued_{self.name}",
            f"exporter {self.name}: {result.message}; the batch goes back to the end of the queue "
            f"(delivery {self.delivery.value} never gives data up by time)",
            exporter=self.name,
        )

    def _update_ratio(self, raw: int, wire: int) -> None:
        self._raw_bytes += raw
        self._wire_bytes += wire
        if self._wire_bytes:
            self.metrics.compression_ratio.labels(self.name).set(self._raw_bytes / self._wire_bytes)

    def _dropped_from_queue(self, batch: Batch, reason: str) -> None:
        """A batch leaves through the queue's policy, never reaching a consumer."""
        self._count_dropped(batch, reason)
        delivery.settle(batch.done, delivery.not_delivered(f"exporter {self.name}: dropped ({reason})"))
        batch.lease.release()

    def _corrupt(self, message: str) -> None:
        self.metrics.queue_corrupt.labels(self.name).inc()
        logs.event(f"queue_corrupt_{self.name}", f"exporter {self.name}: {message}", exporter=self.name)

    def _count_dropped(self, batch: Batch, reason: str) -> None:
        self.metrics.dropped_items.labels(self.name, batch.signal.value, reason).inc(batch.items)
        if reason == "queue_full":  # the batch itself found no room: the collector's enqueue failure
            self.metrics.enqueue_failed.labels(self.name, batch.signal.value).inc(batch.items)
        logs.event(
            f"dropped_{reason}",
            f"exporter {self.name}: dropped {batch.items} items ({reason})",
            exporter=self.name,
        )

    def _publish_bounds(self) -> None:
        """The queue's bounds, and its item count read at scrape time (no cost per request)."""
        queue = self.queue
        self.metrics.queue_capacity.labels(self.name).set(queue.max_bytes)
        self.metrics.queue_capacity_items.labels(self.name).set(queue.max_items)
        self.metrics.queue_items.labels(self.name).set_function(lambda: queue.items)

    def _update_gauges(self) -> None:
        self.metrics.queue_batches.labels(self.name).set(len(self.queue))
        self.metrics.queue_bytes.labels(self.name).set(self.queue.bytes)
        self.metrics.memory_held.set(self.limiter.held)

    async def flush(self) -> None:
        """Hand every partial batch to the queue, and wait for hand-overs under way (their clients may have
        given up on them)."""
        for batcher in self.batchers.values():
            await batcher.close()
        if self._putting:
            await asyncio.wait(set(self._putting))

    async def drain(self, deadline: float | None) -> bool:
        """Wait until everything queued is exported or `deadline` (monotonic; None: no limit) passes;
        True when drained."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    async def stop(self) -> None:
        """Stop consumers; a memory queue's rest is counted as dropped, a persistent queue's stays on disk.

        Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self.queue.stop_waiting()  # with no consumer left, no room will be made
        if self._putting:
            await asyncio.wait(set(self._putting))
        left = await self.queue.close()
        if left and self.queue.persistent:
            logs.info(
                f"exporter {self.name}: {left} batches left on disk for the next start (waiting and "
                "interrupted exports alike)",
                exporter=self.name,
                batches=left,
            )
        self._update_gauges()
        await self.sender.transport.close()


def _answer_waiters(batch: Batch, result: ExportResult) -> None:
    """endToEnd clients hear what the backend said (durable ones were answered at commit)."""
    if result.ok and result.dropped:
        delivery.settle(
            batch.done, delivery.rejected_downstream(f"not all of it was exported: {result.message}")
        )
    elif result.ok:
        delivery.settle(batch.done)
    elif result.retryable or result.gave_up or result.expired:
        delivery.settle(batch.done, delivery.not_delivered(f"not exported: {result.message}"))
    else:
        delivery.settle(batch.done, delivery.rejected_downstream(f"the backend refused it: {result.message}"))
