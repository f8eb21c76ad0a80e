"""The pipeline between receivers and exporters: enrichment, routing, admission (memory limiter, queue
policy) and fan-out.

Without `routes`, every exporter gets every request of its signals: fan-out hands the same bytes object to
every exporter, no copy per exporter. With `routes`, the router says which exporter gets which resource
entries (see `routing`); data no route takes is counted and answered as partial success. With
`processors.k8sAttributes`, resources are completed first (see `enrich`), so routes can match what it adds.

A request is admitted whole or refused whole with a retryable status: if any exporter it is bound for is
full, the client keeps the data and sends it again, which may duplicate it at the other exporters but never
loses it. A client is answered when the strictest delivery mode among its exporters is satisfied (see
`delivery`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from collections.abc import Mapping

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import delivery
from otlp_agent.exporter.lane import ExporterLane
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.otlp import errors
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.pipeline import enrich, routing
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: What refused clients are told to wait, in seconds: about one export round-trip.
REFUSAL_RETRY_AFTER = 1.0


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The answer to a client: how many items were rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""


class Intake:
    """Receivers call `consume`; exporters do the rest on their own tasks."""

    def __init__(
        self,
        s: spec.OTLPPipelineSpec,
        metrics: AgentMetrics,
        transports: dict[str, Transport] | None = None,
        queue_dir: pathlib.Path | None = None,
        limiter: MemoryLimiter | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`limiter`: the previous pipeline's after a reload, so both pipelines' bytes count together.
        `environ`: where the downward-API variables are read (os.environ by default)."""
        settings = s.processors.memory_limiter
        self.limiter = limiter or MemoryLimiter(settings.limit, settings.spike_limit)
        self.limiter.configure(settings.limit, settings.spike_limit)
        self.metrics = metrics
        self.exporters = [
            ExporterLane(
                e, s.processors.batch, self.limiter, metrics, (transports or {}).get(e.name), queue_dir
            )
            for e in s.exporters
        ]
        self._targets = {signal: [e for e in self.exporters if signal in e.signals] for signal in Signal}
        self._by_name = {e.name: e for e in self.exporters}
        self.router = (
            routing.Router(s.routes, {e.name: e.signals for e in self.exporters}) if s.routes else None
        )
        added = enrich.attributes_for(s, environ)
        self.enricher = enrich.Enricher(added) if added else None
        if s.processors.k8s_attributes is not None:
            logs.info(f"k8sAttributes: adding where missing: {sorted(added) or 'nothing'}", added=added)

    async def start(self) -> None:
        for exporter in self.exporters:
            await exporter.start()

    async def consume(self, signal: Signal, payload: bytes, items: int) -> Accepted:
        """Admit a validated request or raise a retryable ReceiveError."""
        if self.enricher is not None:
            payload = self.enricher.apply(payload)
        if self.router is not None:
            return await self._consume_routed(signal, payload, items)
        targets = self._targets[signal]
        if not targets:
            noun = SIGNALS[signal].item_noun
            return Accepted(
                items, f"this pipeline has no exporter for {signal.value}; {items} {noun} dropped"
            )
        await self._deliver(signal, [(exporter, payload, items) for exporter in targets])
        return Accepted()

    async def _consume_routed(self, signal: Signal, payload: bytes, items: int) -> Accepted:
        assert self.router is not None
        routed = self.router.route(signal, payload, items)
        parts = [(self._by_name[name], data, n) for name, (data, n) in routed.deliveries.items()]
        if parts:
            await self._deliver(signal, parts)
        routing.count(self.metrics, signal, routed)
        if not routed.unrouted:
            return Accepted()
        noun = SIGNALS[signal].item_noun
        message = f"{routed.unrouted} {noun} matched no route and this pipeline has no default route; dropped"
        logs.event(f"unrouted_{signal.value}", message, signal=signal.value)
        return Accepted(routed.unrouted, message)

    async def _deliver(self, signal: Signal, parts: list[tuple[ExporterLane, bytes, int]]) -> None:
        """Admit every part (memory, then each exporter's queue) or refuse the whole request; then hand each
        exporter its part and wait for what the delivery modes require."""
        if not self.limiter.would_admit(sum(len(data) for _, data, _ in parts)):
            raise errors.refused(
                f"memory limit reached ({self.limiter.held} bytes held); retry later",
                REFUSAL_RETRY_AFTER,
                "memory_limit",
            )
        for exporter, data, items in parts:
            too_big = exporter.never_fits(len(data), items)
            if too_big is not None:  # "retry later" would be a lie: refused for good
                raise errors.too_large(f"{too_big}; it can never be queued")
        for exporter, data, items in parts:
            if exporter.refuses(len(data), items):
                raise errors.refused(
                    f"exporter {exporter.name} queue is full; retry later", REFUSAL_RETRY_AFTER, "queue_full"
                )
        waits: list[asyncio.Future[None]] = []
        for exporter, data, items in parts:
            waits += await exporter.accept(signal, data, items)
        if waits:
            await delivery.wait_all(waits)

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
