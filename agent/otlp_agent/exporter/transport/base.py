"""What every transport implements: send one batch, once, and say what the backend answered."""

from __future__ import annotations

from typing import Protocol

from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult


class Transport(Protocol):
    """Sends one batch, once; never retries (the retry sender does)."""

    async def export(self, batch: Batch, timeout: float) -> ExportResult: ...

    async def close(self) -> None: ...
