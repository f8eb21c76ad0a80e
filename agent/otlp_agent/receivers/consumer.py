"""What receivers hand requests to, and the answer they get back (implemented by the pipeline's intake)."""

from __future__ import annotations

from typing import Protocol

from otlp_agent.api.spec import Signal
from otlp_agent.exporter.memory import MemoryLimiter


class Answer(Protocol):
    """How a consumer answers: items rejected (partial success) and why."""

    @property
    def rejected(self) -> int: ...

    @property
    def message(self) -> str: ...


class Consumer(Protocol):
    """What receivers deliver to (the pipeline): raises errors.ReceiveError to refuse."""

    @property
    def limiter(self) -> MemoryLimiter:
        """The memory limiter requests are reserved in while they are received."""
        ...

    async def consume(self, signal: Signal, payload: bytes, items: int, tenant: str | None = None) -> Answer:
        """`tenant`: what the client's bearer token says it is (receivers' auth.tenants), else None."""
        ...
