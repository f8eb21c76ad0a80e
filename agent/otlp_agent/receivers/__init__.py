"""Receivers: OTLP/gRPC and OTLP/HTTP front doors. They validate and decode, then hand bytes to a Consumer."""

from __future__ import annotations

from typing import Protocol

from otlp_agent.spec import Signal


class Answer(Protocol):
    """How a consumer answers: items rejected (partial success) and why."""

    @property
    def rejected(self) -> int: ...

    @property
    def message(self) -> str: ...


class Consumer(Protocol):
    """What receivers deliver to (the pipeline): raises errors.ReceiveError to refuse."""

    async def consume(self, signal: Signal, payload: bytes, items: int) -> Answer: ...
