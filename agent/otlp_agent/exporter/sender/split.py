"""Payload too large: a batch the backend refuses for its size is split and sent again in parts.

Wraps the retry sender. When an attempt comes back `too_large` (HTTP 413, or gRPC RESOURCE_EXHAUSTED about
size and without RetryInfo), the batch is split at the wire level (`wire.split`: between resources, then
scopes, then items; each part repeats its resource and scope) into parts of at most half its size, and the
parts are sent in order, each through the retry sender, each split again if refused again. A single item
the backend still refuses can never fit: it is dropped, counted in
`otlp_agent_dropped_items_total{reason="too_large"}` and logged. A part that fails for another reason is
counted like a failed batch (`otlp_agent_failed_items_total`).

The exporter learns the size limit: the largest batch accepted and the smallest refused. Its batches are
capped (batcher `maxBytes`, and batches already queued are split before sending) at the midpoint between
the two, which narrows with every answer, and at the largest accepted once they are within 10% of each
other. The cap is in uncompressed bytes and lasts until the exporter is recreated (restart, reload).

The lane hears one result per batch: when a batch was split, `ok` with `dropped` the items not exported
(already counted here) and `rejected` the parts' partial-success rejections.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.otlp import wire
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

_CLOSE_ENOUGH = 0.9  # largest accepted / smallest refused above which the search stops
_NO_ITEM_LIMIT = 1 << 62


@dataclasses.dataclass
class SizeLimit:
    """What the backend's size limit is known to be, in uncompressed batch bytes."""

    fits: int = 0  # the largest batch accepted
    refused: int | None = None  # the smallest batch refused for its size

    def accepted(self, size: int) -> None:
        if self.refused is None or size < self.refused:
            self.fits = max(self.fits, size)

    def refuse(self, size: int) -> None:
        self.refused = size if self.refused is None else min(self.refused, size)
        self.fits = min(self.fits, size - 1)

    @property
    def cap(self) -> int | None:
        """Largest batch to send, or None while nothing was refused."""
        if self.refused is None:
            return None
        if not self.fits:
            return max(1, self.refused // 2)
        if self.fits >= self.refused * _CLOSE_ENOUGH:
            return self.fits
        return (self.fits + self.refused) // 2


@dataclasses.dataclass
class _Tally:
    """What became of the parts of one batch."""

    exported: int = 0
    rejected: int = 0
    dropped: int = 0
    wire_bytes: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)


class SplittingSender:
    """too large -> split -> send the parts (each through the retry sender); learn the limit."""

    def __init__(
        self,
        inner: RetrySender,
        metrics: AgentMetrics,
        on_cap: Callable[[int], None] = lambda cap: None,
    ) -> None:
        """`on_cap(bytes)`: the learned cap changed (the lane caps its batchers)."""
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics
        self.limit = SizeLimit()
        self._on_cap = on_cap

    @property
    def transport(self) -> Transport:
        return self.inner.transport

    async def send(self, batch: Batch) -> ExportResult:
        cap = self.limit.cap
        refused = False
        if cap is None or batch.size <= cap:
            result = await self._attempt(batch)
            if not result.too_large:
                return result  # the usual path: one attempt's result, as the retry sender gave it
            refused = True
        tally = _Tally()
        await self._in_parts(batch, tally, refused)
        return ExportResult(
            ok=True,
            rejected=tally.rejected,
            dropped=tally.dropped,
            wire_bytes=tally.wire_bytes,
            message="; ".join(tally.messages[:3]),
        )

    async def _deliver(self, batch: Batch, tally: _Tally) -> None:
        """Send a part: as it is when it is within the cap (or cannot be cut), else in smaller parts."""
        cap = self.limit.cap
        if cap is None or batch.size <= cap or batch.items <= 1:
            result = await self._attempt(batch)
            if not result.too_large:
                self._settle(batch, result, tally)
                return
            await self._in_parts(batch, tally, refused=True)
        else:
            await self._in_parts(batch, tally, refused=False)

    async def _in_parts(self, batch: Batch, tally: _Tally, refused: bool) -> None:
        """Cut `batch` into parts of at most the cap, and at most half of it; `refused`: the backend refused
        it as it is, so if it cannot be cut it can never fit."""
        limit = max(1, min(self.limit.cap or batch.size, batch.size // 2))
        parts = await asyncio.to_thread(wire.split, batch.signal, batch.payload(), _NO_ITEM_LIMIT, limit)
        if len(parts) > 1:
            for data, items in parts:
                await self._deliver(Batch(batch.signal, [data], items, len(data)), tally)
        elif refused:
            self._drop(batch, tally)
        else:  # over the cap, but one item: the backend decides
            result = await self._attempt(batch)
            if result.too_large:
                self._drop(batch, tally)
            else:
                self._settle(batch, result, tally)

    async def _attempt(self, batch: Batch) -> ExportResult:
        result = await self.inner.send(batch)
        cap = self.limit.cap
        if result.ok:
            self.limit.accepted(batch.size)
        elif result.too_large:
            self.limit.refuse(batch.size)
            self.metrics.too_large_refusals.labels(self.name).inc()
        if self.limit.cap != cap and self.limit.cap is not None:
            self.metrics.batch_bytes_cap.labels(self.name).set(self.limit.cap)
            self._on_cap(self.limit.cap)
        return result

    def _settle(self, part: Batch, result: ExportResult, tally: _Tally) -> None:
        if result.ok:
            tally.exported += part.items - result.rejected
            tally.rejected += result.rejected
            tally.wire_bytes += result.wire_bytes
            if result.message:
                tally.messages.append(result.message)
            return
        reason = "retries_exhausted" if result.retryable or result.gave_up else "rejected"
        self.metrics.failed_items.labels(self.name, part.signal.value, reason).inc(part.items)
        tally.dropped += part.items
        tally.messages.append(result.message)

    def _drop(self, part: Batch, tally: _Tally) -> None:
        noun = SIGNALS[part.signal].item_noun
        self.metrics.dropped_items.labels(self.name, part.signal.value, "too_large").inc(part.items)
        message = (
            f"exporter {self.name}: {part.items} {noun} in {part.size} bytes can never fit the backend's "
            f"size limit (it refused {self.limit.refused} bytes); dropped"
        )
        logs.event(f"too_large_{self.name}", message, exporter=self.name)
        tally.dropped += part.items
        tally.messages.append(message)
