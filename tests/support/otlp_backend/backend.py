"""`OtlpBackend`: a recording, fault-injecting OTLP server (gRPC and HTTP at once) on loopback.

It runs its own asyncio loop in a daemon thread, so the same object serves sync tests, async tests whose
loop runs the agent, and benchmarks. Public methods are thread-safe and may be called from any thread or
event loop; the async waits suspend only the awaiting task.

    with OtlpBackend() as backend:
        backend.script(Fault.unavailable(retry_after=0.1))   # first request fails, then success
        ... export to backend.grpc_endpoint / backend.http_endpoint ...
        backend.wait_for_items("traces", 10)
        assert [r.outcome for r in backend.requests] == ["error", "accepted"]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from tests.support.otlp_backend import faults, grpc_server, http_server, recorder, wire

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class OtlpBackend:
    """A real OTLP backend on free loopback ports; see the module docstring for a tour."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        http_port: int = 0,
        max_body_bytes: int = 64 << 20,
        keep_bodies: bool = True,
    ) -> None:
        """`keep_bodies=False` records counts and metadata only (body=b""), for long benchmark runs."""
        self._host = host
        self._ports = (grpc_port, http_port)
        self._store = recorder.Recorder(keep_bodies)
        self._grpc = grpc_server.GrpcReceiver(self._store, host, max_body_bytes)
        self._http = http_server.HttpReceiver(self._store, host, max_body_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> OtlpBackend:
        """Start both servers; returns once they accept connections (or raises why they could not)."""
        if self._thread is not None:
            raise RuntimeError("OtlpBackend already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-backend", daemon=True)
        self._thread.start()
        try:
            self._call(self._start_servers(), _START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start_servers(self) -> None:
        await self._grpc.start(self._ports[0])
        await self._http.start(self._ports[1])

    def stop(self) -> None:
        """Stop both servers and the loop thread within a bounded time; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._stop_servers(), _STOP_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    async def _stop_servers(self) -> None:
        self._store.stopping = True
        await self._http.stop()
        await self._grpc.stop()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _call(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __enter__(self) -> OtlpBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> OtlpBackend:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- endpoints ------------------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        """ "127.0.0.1:PORT" for OTLP/gRPC clients (through the relay that can drop connections)."""
        return f"{self._address}:{self._grpc.port}"

    @property
    def grpc_direct_endpoint(self) -> str:
        """The gRPC server without the relay: cheaper for benchmarks, but `drop_connection` cannot work."""
        return f"{self._address}:{self._grpc.direct_port}"

    @property
    def http_endpoint(self) -> str:
        """ "http://127.0.0.1:PORT"; signals live at /v1/traces, /v1/metrics and /v1/logs."""
        return f"http://{self._address}:{self._http.port}"

    @property
    def _address(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    # -- faults ---------------------------------------------------------------------------------------

    def script(self, *fault_list: faults.Fault, signal: str | None = None) -> None:
        """The next requests (of `signal`, or of any signal) get these faults in order, then success.

        A request takes from its own signal's script first, then from the shared one, then
        `default_fault`. Scripted faults are consumed by decodable requests only.
        """
        if signal is not None and signal not in wire.SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        self._store.script(fault_list, signal)

    @property
    def default_fault(self) -> faults.Fault | None:
        """Applied to every request once no scripted fault is left (None: accept)."""
        return self._store.default_fault

    @default_fault.setter
    def default_fault(self, fault: faults.Fault | None) -> None:
        self._store.default_fault = fault

    @property
    def pending_faults(self) -> int:
        """Scripted faults not yet applied."""
        return self._store.pending_faults()

    def clear_faults(self) -> None:
        """Forget scripted faults and the default fault."""
        self._store.clear_faults()

    # -- recordings -----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[recorder.ReceivedRequest]:
        """Every request received so far, in order of completion, faulted ones included."""
        return self._store.requests()

    def reset(self) -> None:
        """Forget recorded requests (faults stay; see `clear_faults`)."""
        self._store.reset()

    def accepted(self, signal: str) -> list[Any]:
        """Parsed Export*ServiceRequest messages of `signal` whose data was accepted."""
        return [r.message() for r in self._store.requests() if r.accepted and r.signal == signal]

    def accepted_items(self, signal: str) -> int:
        """Spans / data points / log records of `signal` accepted so far."""
        return self._store.accepted_items(signal)

    def spans(self) -> list[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, scope name, Span) for every accepted span."""
        return [
            (wire.attributes(rs.resource.attributes), ss.scope.name, span)
            for message in self.accepted("traces")
            for rs in message.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def data_points(self) -> list[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, metric name, data point) for every accepted metric data point."""
        return [
            (wire.attributes(resource.attributes), metric.name, point)
            for message in self.accepted("metrics")
            for resource, metric, point in wire.iter_points(message)
        ]

    def log_records(self) -> list[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, scope name, LogRecord) for every accepted log record."""
        return [
            (wire.attributes(rl.resource.attributes), sl.scope.name, record)
            for message in self.accepted("logs")
            for rl in message.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]

    # -- waiting --------------------------------------------------------------------------------------

    def wait_for_items(self, signal: str, count: int, timeout: float = 10.0) -> None:
        """Block until at least `count` items of `signal` were accepted; AssertionError on timeout."""
        predicate = self._store.items_at_least(_known(signal), count)
        self._store.wait_until(predicate, timeout, f"{count} accepted {signal} items")

    async def wait_for_items_async(
        self,
        signal: str,
        count: int,
        timeout: float = 10.0,
    ) -> None:
        """`wait_for_items` for async tests: suspends the awaiting task, not its event loop."""
        predicate = self._store.items_at_least(_known(signal), count)
        await self._store.wait_until_async(predicate, timeout, f"{count} accepted {signal} items")

    def wait_for_requests(self, count: int, signal: str | None = None, timeout: float = 10.0) -> None:
        """Block until at least `count` requests (of `signal`, any outcome) were recorded."""
        predicate = self._store.requests_at_least(count, signal)
        self._store.wait_until(predicate, timeout, f"{count} recorded {signal or 'any'} requests")

    async def wait_for_requests_async(
        self,
        count: int,
        signal: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """`wait_for_requests` for async tests."""
        predicate = self._store.requests_at_least(count, signal)
        await self._store.wait_until_async(predicate, timeout, f"{count} recorded {signal or 'any'} requests")

    def wait_for_arrivals(self, count: int, timeout: float = 10.0) -> None:
        """Block until `count` requests reached a handler, answered or not (e.g. one held by `delay`)."""
        self._store.wait_until(self._store.arrivals_at_least(count), timeout, f"{count} arrived requests")

    async def wait_for_arrivals_async(self, count: int, timeout: float = 10.0) -> None:
        """`wait_for_arrivals` for async tests."""
        predicate = self._store.arrivals_at_least(count)
        await self._store.wait_until_async(predicate, timeout, f"{count} arrived requests")


def _known(signal: str) -> str:
    if signal not in wire.SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; expected one of {sorted(wire.SIGNALS)}")
    return signal
