"""The pipeline between receivers and exporters: admission (memory limiter, queue policy) and fan-out.

A request is admitted whole or refused whole with a retryable status: if any exporter it is bound for is
full, the client keeps the data and sends it again, which may duplicate it at the other exporters but never
loses it. Fan-out hands the same bytes object to every exporter: no copy per exporter. A client is answered
when the strictest delivery mode among its exporters is satisfied (see `delivery`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib

from otlp_agent import delivery, errors, spec
from otlp_agent.exporters.result import Transport
from otlp_agent.exporters.runtime import ExporterRuntime
from otlp_agent.limiter import MemoryLimiter
from otlp_agent.metrics import AgentMetrics
from otlp_agent.signals import SIGNALS
from otlp_agent.spec import Signal

#: What refused clients are told to wait, in seconds: about one export round-trip.
REFUSAL_RETRY_AFTER = 1.0


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The answer to a client: how many items were rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""


class Pipeline:
    """Receivers call `consume`; exporters do the rest on their own tasks."""

    def __init__(
        self,
        s: spec.OTLPPipelineSpec,
        metrics: AgentMetrics,
        transports: dict[str, Transport] | None = None,
        queue_dir: pathlib.Path | None = None,
        limiter: MemoryLimiter | None = None,
    ) -> None:
        """`limiter`: the previous pipeline's after a reload, so both pipelines' bytes count together."""
        settings = s.processors.memory_limiter
        self.limiter = limiter or MemoryLimiter(settings.limit, settings.spike_limit)
        self.limiter.configure(settings.limit, settings.spike_limit)
        self.metrics = metrics
        self.exporters = [
            ExporterRuntime(
                e, s.processors.batch, self.limiter, metrics, (transports or {}).get(e.name), queue_dir
            )
            for e in s.exporters
        ]
        self._targets = {signal: [e for e in self.exporters if signal in e.signals] for signal in Signal}

    async def start(self) -> None:
        for exporter in self.exporters:
            await exporter.start()

    async def consume(self, signal: Signal, payload: bytes, items: int) -> Accepted:
        """Admit a validated request or raise a retryable ReceiveError."""
        targets = self._targets[signal]
        if not targets:
            noun = SIGNALS[signal].item_noun
            return Accepted(
                items, f"this pipeline has no exporter for {signal.value}; {items} {noun} dropped"
            )
        if not self.limiter.would_admit(len(payload) * len(targets)):
            raise errors.refused(
                f"memory limit reached ({self.limiter.held} bytes held); retry later",
                REFUSAL_RETRY_AFTER,
                "memory_limit",
            )
        for exporter in targets:
            if exporter.refuses(len(payload), items):
                raise errors.refused(
                    f"exporter {exporter.name} queue is full; retry later", REFUSAL_RETRY_AFTER, "queue_full"
                )
        waits: list[asyncio.Future[None]] = []
        for exporter in targets:
            waits += await exporter.accept(signal, payload, items)
        if waits:
            await delivery.wait_all(waits)
        return Accepted()

    def abandon_waiters(self, message: str) -> None:
        for exporter in self.exporters:
            exporter.abandon_waiters(message)

    async def flush(self) -> None:
        for exporter in self.exporters:
            await exporter.flush()

    async def drain(self, deadline: float | None) -> bool:
        results = [await exporter.drain(deadline) for exporter in self.exporters]
        return all(results)

    async def stop(self) -> None:
        for exporter in self.exporters:
            await exporter.stop()

    async def stop_exporters(self, names: frozenset[str]) -> None:
        for exporter in self.exporters:
            if exporter.name in names:
                await exporter.stop()

    async def retire(self, handed_over: frozenset[str]) -> None:
        """After a reload, once `flush` and `stop_exporters(handed_over)` ran: export the rest, then stop.

        Exporters in `handed_over` had a persistent queue that the new pipeline reopened (an export that was
        in flight is sent again from there). The others drain to their backend for as long as that takes
        (the agent's shutdown bounds it), so a reload drops no queued data.
        """
        for exporter in self.exporters:
            if exporter.name not in handed_over:
                await exporter.drain(None)
        await self.stop()
