"""The pipeline between receivers and exporters: admission (memory limiter, queue policy) and fan-out.

A request is admitted whole or refused whole with a retryable status: if any exporter it is bound for is
full, the client keeps the data and sends it again, which may duplicate it at the other exporters but never
loses it. Fan-out hands the same bytes object to every exporter: no copy per exporter.
"""

from __future__ import annotations

import dataclasses

from otlp_agent import errors, spec
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
        self, s: spec.OTLPPipelineSpec, metrics: AgentMetrics, transports: dict[str, Transport] | None = None
    ) -> None:
        limiter_settings = s.processors.memory_limiter
        self.limiter = MemoryLimiter(limiter_settings.limit, limiter_settings.spike_limit)
        self.metrics = metrics
        self.exporters = [
            ExporterRuntime(e, s.processors.batch, self.limiter, metrics, (transports or {}).get(e.name))
            for e in s.exporters
        ]
        self._targets = {signal: [e for e in self.exporters if signal in e.signals] for signal in Signal}

    def start(self) -> None:
        for exporter in self.exporters:
            exporter.start()

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
            if exporter.refuses():
                raise errors.refused(
                    f"exporter {exporter.name} queue is full; retry later", REFUSAL_RETRY_AFTER, "queue_full"
                )
        for exporter in targets:
            await exporter.accept(signal, payload, items)
        return Accepted()

    async def flush(self) -> None:
        for exporter in self.exporters:
            await exporter.flush()

    async def drain(self, deadline: float) -> bool:
        results = [await exporter.drain(deadline) for exporter in self.exporters]
        return all(results)

    async def stop(self) -> None:
        for exporter in self.exporters:
            await exporter.stop()
