"""One configured exporter at run time: its batchers (one per signal), its queue, and its consumers.

Each exporter has its own queue and consumers, so a slow backend never stalls the others. Every batch
leaves through exactly one outcome — exported, failed (backend said no, or retries gave up), or dropped
(queue policy, shutdown) — each counted, and its bytes released from the memory limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from otlp_agent import logs, spec
from otlp_agent.batcher import Batch, Batcher
from otlp_agent.exporters.debug_transport import DebugTransport
from otlp_agent.exporters.grpc_transport import GrpcTransport
from otlp_agent.exporters.http_transport import HttpTransport
from otlp_agent.exporters.result import ExportResult, Transport
from otlp_agent.exporters.sender import RetrySender
from otlp_agent.limiter import MemoryLimiter
from otlp_agent.metrics import AgentMetrics
from otlp_agent.queues import MemoryQueue


def make_transport(exporter: spec.Exporter) -> Transport:
    """The transport an exporter's settings call for."""
    if exporter.debug is not None:
        return DebugTransport(exporter)
    if exporter.protocol == spec.Protocol.grpc:
        return GrpcTransport(exporter)
    return HttpTransport(exporter)


class ExporterRuntime:
    """Batchers -> queue -> consumers -> retry sender, for one exporter."""

    def __init__(
        self,
        exporter: spec.Exporter,
        batch: spec.Batch,
        limiter: MemoryLimiter,
        metrics: AgentMetrics,
        transport: Transport | None = None,
    ) -> None:
        self.name = exporter.name
        self.signals = frozenset(exporter.signals)
        self.limiter = limiter
        self.metrics = metrics
        self.queue = MemoryQueue(exporter.queue, self._dropped_from_queue)
        self.batchers = {signal: Batcher(signal, batch, self._enqueue) for signal in self.signals}
        self.sender = RetrySender(exporter, transport or make_transport(exporter), metrics)
        self._consumer_count = exporter.queue.consumers
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Start the consumers (before any producer, so nothing waits on a queue nobody reads)."""
        loop = asyncio.get_running_loop()
        self._consumers = [
            loop.create_task(self._consume(), name=f"exporter-{self.name}-{i}")
            for i in range(self._consumer_count)
        ]

    def refuses(self) -> bool:
        """True when new data must be refused because the queue is full under the `refuse` policy."""
        return self.queue.when_full == spec.WhenFull.refuse and self.queue.is_full()

    async def accept(self, signal: spec.Signal, data: bytes, items: int) -> None:
        self.limiter.acquire(len(data))
        self._update_gauges()
        await self.batchers[signal].add(data, items)

    async def _enqueue(self, batch: Batch) -> None:
        self._idle.clear()
        await self.queue.put(batch)
        self._update_gauges()

    async def _consume(self) -> None:
        while True:
            batch = await self.queue.get()
            self._in_flight += 1
            try:
                result = await self.sender.send(batch)
                self._account(batch, result)
            except asyncio.CancelledError:  # shutdown deadline passed while this batch was in flight
                self._count_dropped(batch, "shutdown")
                raise
            except Exception as exc:  # a bug must cost one batch, never the consumer
                self._count_dropped(batch, "internal_error")
                logs.event(
                    "export_bug", f"exporter {self.name}: unexpected error {exc!r}", exporter=self.name
                )
            finally:
                self._in_flight -= 1
                self.limiter.release(batch.size)
                self._update_gauges()
                if self._in_flight == 0 and not len(self.queue):
                    self._idle.set()

    def _account(self, batch: Batch, result: ExportResult) -> None:
        signal = batch.signal.value
        m = self.metrics
        if result.ok:
            m.exported_items.labels(self.name, signal).inc(batch.items - result.rejected)
            m.batch_items.labels(self.name, signal).observe(batch.items)
            m.uncompressed_bytes.labels(self.name).inc(batch.size)
            m.wire_bytes.labels(self.name).inc(result.wire_bytes)
            if result.rejected:
                m.failed_items.labels(self.name, signal, "partial_success").inc(result.rejected)
                logs.event(
                    "partial_success",
                    f"exporter {self.name}: backend rejected {result.rejected} items: {result.message}",
                    exporter=self.name,
                )
            return
        reason = "retries_exhausted" if result.retryable or "gave up" in result.message else "rejected"
        m.failed_items.labels(self.name, signal, reason).inc(batch.items)
        logs.event(
            f"export_failed_{self.name}",
            f"exporter {self.name}: {batch.items} items lost: {result.message}",
            exporter=self.name,
        )

    def _dropped_from_queue(self, batch: Batch, reason: str) -> None:
        """A batch leaves through the queue's policy or shutdown, never reaching a consumer."""
        self._count_dropped(batch, reason)
        self.limiter.release(batch.size)

    def _count_dropped(self, batch: Batch, reason: str) -> None:
        self.metrics.dropped_items.labels(self.name, batch.signal.value, reason).inc(batch.items)
        logs.event(
            f"dropped_{reason}",
            f"exporter {self.name}: dropped {batch.items} items ({reason})",
            exporter=self.name,
        )

    def _update_gauges(self) -> None:
        self.metrics.queue_batches.labels(self.name).set(len(self.queue))
        self.metrics.queue_bytes.labels(self.name).set(self.queue.bytes)
        self.metrics.memory_held.set(self.limiter.held)

    async def flush(self) -> None:
        """Hand every partial batch to the queue."""
        for batcher in self.batchers.values():
            await batcher.close()

    async def drain(self, deadline: float) -> bool:
        """Wait until everything queued is exported or `deadline` (monotonic) passes; True when drained."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
        return self._idle.is_set()

    async def stop(self) -> None:
        """Stop consumers; whatever is still queued is counted as dropped at shutdown."""
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self.queue.drain_all("shutdown")
        await self.sender.transport.close()
