"""A scripted exporter transport for tests: records batches and holds each export until the test opens the
gate, so "the backend is slow" is a state the test controls instead of a timing it hopes for."""

from __future__ import annotations

import asyncio

from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult


class GatedTransport:
    """Exports wait on `gate`; `results` (if any) are answered in order, then success."""

    def __init__(self, *results: ExportResult) -> None:
        self.gate = asyncio.Event()
        self.results = list(results)
        self.batches: list[Batch] = []
        self.waiting = 0

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        self.batches.append(batch)
        return self.results.pop(0) if self.results else ExportResult.success(wire_bytes=batch.size)

    async def close(self) -> None:
        self.gate.set()

    @property
    def items(self) -> int:
        return sum(batch.items for batch in self.batches)
