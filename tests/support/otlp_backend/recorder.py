"""The backend's memory: every request it received, the faults still to apply, and waiting for arrivals.

Shared between the backend's event-loop thread (which records) and test threads or other event loops
(which read and wait), so every access holds one lock; waiters are woken through a condition variable
(threads) or `call_soon_threadsafe` on their own loop (asyncio), never by polling.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.support.otlp_backend import faults, wire

ACCEPTED_OUTCOMES = frozenset({"accepted", "partial_rejected"})


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """One request as the backend saw it, and what it answered.

    outcome: "accepted"; "partial_rejected" (answered success with partial_success; its data is kept,
    since the client is told not to retry it); "error" (answered `status`); "dropped" (connection closed
    without answer); "client_gone" (the client left while a `delay` fault held the answer); "stopped" (the
    backend stopped while a `delay` fault held the answer); "invalid"
    (undecodable body, answered 400 / INVALID_ARGUMENT; never consumes a scripted fault).
    """

    signal: str  # "traces" | "metrics" | "logs"
    transport: str  # "grpc" | "http"
    content_type: str  # "application/grpc" | "application/x-protobuf" | "application/json"
    content_encoding: str  # "identity" | "gzip" | "deflate" | "zstd"
    headers: dict[str, Any]  # lower-case names (gRPC metadata or HTTP headers)
    wire_size: int  # body bytes as received (compressed, JSON, ...)
    body: bytes  # decompressed protobuf Export*ServiceRequest (JSON converted)
    items: int  # spans / data points / log records in the body
    outcome: str
    status: str | None = None  # answered gRPC code name or HTTP status; None if nothing was answered
    fault: faults.Fault | None = None
    error: str | None = None  # why an "invalid" request was refused
    peer: str = ""  # the client's address and port as the backend saw it: one per connection
    received_at: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def accepted(self) -> bool:
        """Whether this request's data counts as delivered."""
        return self.outcome in ACCEPTED_OUTCOMES

    def message(self) -> Any:
        """The body parsed as the signal's Export*ServiceRequest."""
        return wire.parse(wire.SIGNALS[self.signal], self.body)


class Recorder:
    """Thread-safe store of requests, fault script and waiters."""

    def __init__(self, keep_bodies: bool = True) -> None:
        self.keep_bodies = keep_bodies
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[ReceivedRequest] = []
        self._arrivals = 0  # requests that reached a handler, including ones not answered yet
        self.stopping = False  # set while the backend shuts down, so held requests say why they ended
        self._script: dict[str | None, collections.deque[faults.Fault]] = collections.defaultdict(
            collections.deque
        )
        self._default: faults.Fault | None = None
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # -- faults ---------------------------------------------------------------------------------------

    def script(self, fault_list: tuple[faults.Fault, ...], signal: str | None) -> None:
        with self._lock:
            self._script[signal].extend(fault_list)

    def clear_faults(self) -> None:
        with self._lock:
            self._script.clear()
            self._default = None

    @property
    def default_fault(self) -> faults.Fault | None:
        with self._lock:
            return self._default

    @default_fault.setter
    def default_fault(self, fault: faults.Fault | None) -> None:
        with self._lock:
            self._default = fault

    def next_fault(self, signal: str) -> faults.Fault | None:
        """The fault for the next request of `signal`: its own script, then the shared one, then default."""
        with self._lock:
            for key in (signal, None):
                if self._script[key]:
                    return self._script[key].popleft()
            return self._default

    def pending_faults(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._script.values())

    # -- recording ------------------------------------------------------------------------------------

    def arrive(self) -> None:
        """Count a request that reached a handler (it is recorded once answered)."""
        with self._lock:
            self._arrivals += 1
            self._wake()

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._wake()

    def _wake(self) -> None:
        self._changed.notify_all()
        for loop, event in self._async_waiters:
            loop.call_soon_threadsafe(event.set)

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._arrivals = 0

    def accepted_items(self, signal: str) -> int:
        with self._lock:
            return self._accepted_items(signal)

    def _accepted_items(self, signal: str) -> int:
        return sum(r.items for r in self._requests if r.accepted and r.signal == signal)

    def summary(self) -> str:
        """What arrived so far, for assertion messages."""
        with self._lock:
            accepted = ", ".join(f"{s}={self._accepted_items(s)}" for s in wire.SIGNALS)
            outcomes = collections.Counter(f"{r.signal}/{r.transport}:{r.outcome}" for r in self._requests)
        listing = ", ".join(f"{key} x{n}" for key, n in sorted(outcomes.items())) or "none"
        return f"accepted items: {accepted}; requests: {listing}"

    # -- waiting --------------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Block the calling thread until `predicate()` (evaluated under the lock) holds."""
        with self._lock:
            satisfied = self._changed.wait_for(predicate, timeout)
        if not satisfied:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; {self.summary()}")

    async def wait_until_async(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        """Like `wait_until`, but suspends only the calling task, not its event loop."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._async_waiters.add(waiter)
        try:
            async with asyncio.timeout(seconds):
                while True:
                    waiter[1].clear()  # clear before checking, so a record in between still wakes us
                    with self._lock:
                        if predicate():
                            return
                    await waiter[1].wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}; {self.summary()}") from None
        finally:
            with self._lock:
                self._async_waiters.discard(waiter)

    def items_at_least(self, signal: str, count: int) -> Callable[[], bool]:
        """A predicate for the wait methods; runs with the lock already held."""
        return lambda: self._accepted_items(signal) >= count

    def requests_at_least(self, count: int, signal: str | None) -> Callable[[], bool]:
        """A predicate for the wait methods; runs with the lock already held."""
        return lambda: sum(1 for r in self._requests if signal in (None, r.signal)) >= count

    def arrivals_at_least(self, count: int) -> Callable[[], bool]:
        """A predicate for the wait methods; runs with the lock already held."""
        return lambda: self._arrivals >= count
