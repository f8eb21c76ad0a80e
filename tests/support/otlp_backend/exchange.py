"""One request's path through the backend, shared by both transports: decode, pick the fault, apply it,
record what happened, answer. Transports only say how to decode their bodies and how each answer looks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from tests.support.otlp_backend import faults, recorder, wire

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclasses.dataclass(frozen=True)
class Incoming:
    """A request as it came off the wire, before decoding."""

    signal: wire.Signal
    transport: str
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    wire: bytes
    peer: str = ""  # the client's address and port: one per connection


class Answers(Protocol[T_co]):
    """How one transport answers; each method returns what that transport's handler must return."""

    async def success(self, response: Any) -> T_co: ...

    async def error(self, fault: faults.Fault) -> T_co: ...

    async def invalid(self, problem: wire.BadRequest) -> T_co: ...

    async def drop(self) -> T_co: ...

    def status(self, fault: faults.Fault | None) -> str: ...


@dataclasses.dataclass
class Exchange(Generic[T]):
    """Serve one request: `decode` turns wire bytes into protobuf bytes or raises wire.BadRequest."""

    store: recorder.Recorder
    incoming: Incoming
    decode: Callable[[bytes], bytes]
    answers: Answers[T]

    async def run(self) -> T:
        self.store.arrive()
        try:
            body = self.decode(self.incoming.wire)
            items = wire.count_items(self.incoming.signal, wire.parse(self.incoming.signal, body))
        except wire.BadRequest as problem:
            self._record(b"", 0, "invalid", None, status=self._invalid_status(problem), error=str(problem))
            return await self.answers.invalid(problem)
        fault = self.store.next_fault(self.incoming.signal.name)
        if fault is not None:
            fault = fault.applied_to(self.incoming.content_encoding, len(body))
        if fault is None:
            return await self._accept(body, items, None)
        return await self._apply(fault, body, items)

    async def _apply(self, fault: faults.Fault, body: bytes, items: int) -> T:
        if fault.delay:
            try:
                await asyncio.sleep(fault.delay)  # the fault under test: a backend that hangs
            except asyncio.CancelledError:
                outcome = "stopped" if self.store.stopping else "client_gone"
                self._record(body, items, outcome, fault, status=None)
                raise
        if fault.drop_connection:
            self._record(body, items, "dropped", fault, status=None)
            return await self.answers.drop()
        if fault.is_error:
            self._record(body, items, "error", fault, status=self.answers.status(fault))
            return await self.answers.error(fault)
        return await self._accept(body, items, fault)

    async def _accept(self, body: bytes, items: int, fault: faults.Fault | None) -> T:
        signal = self.incoming.signal
        if fault is not None and fault.partial_rejected is not None:
            self._record(body, items, "partial_rejected", fault, status=self.answers.status(None))
            return await self.answers.success(wire.success(signal, fault.partial_rejected, fault.message))
        self._record(body, items, "accepted", fault, status=self.answers.status(None))
        return await self.answers.success(wire.success(signal))

    def _invalid_status(self, problem: wire.BadRequest) -> str:
        if self.incoming.transport == "http":
            return str(problem.http_status)
        return "INVALID_ARGUMENT"

    def _record(
        self,
        body: bytes,
        items: int,
        outcome: str,
        fault: faults.Fault | None,
        *,
        status: str | None,
        error: str | None = None,
    ) -> None:
        incoming = self.incoming
        self.store.record(
            recorder.ReceivedRequest(
                signal=incoming.signal.name,
                transport=incoming.transport,
                content_type=incoming.content_type,
                content_encoding=incoming.content_encoding,
                headers=incoming.headers,
                wire_size=len(incoming.wire),
                body=body if self.store.keep_bodies else b"",
                items=items,
                outcome=outcome,
                status=status,
                fault=fault,
                error=error,
                peer=incoming.peer,
            )
        )
