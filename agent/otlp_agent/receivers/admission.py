"""What every receiver does before a request reaches the pipeline, whatever its transport: reserve memory
for the request's worst case before reading it, decompress and validate it within that reservation and
within the per-request entry limit, and keep per-item work off the event loop. The gRPC, HTTP and WebSocket
receivers use it (and any later receiver should), so size, memory and item limits answer the same
everywhere.

The answers tell clients the truth about retrying:
- a request that could never be taken — larger than the size limit, than the memory limit, or with more
  entries than `maxItemsPerRequest` — is refused for good: HTTP 413, gRPC RESOURCE_EXHAUSTED without
  RetryInfo (which the OTLP specification makes non-retryable), the message naming the limit;
- a request that does not fit *now* (data held over the soft limit, or no room for its reservation within
  `RESERVE_WAIT`) is refused as retryable: HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo.

Memory, in order (see `memory.MemoryLimiter.reserve`): the raw bytes are reserved before they are read (a
declared Content-Length, else the size limit; for gRPC the size limit, its size being unknown until grpc has
read it; for a WebSocket message the length its frame header declares, see `websocket_gate`), settled to the
real size once read (the copies made on the way — the joined chunks of a body,
grpc's buffer turned into bytes, grpc's decompressed copy — are made one at a time and freed at once: fixed
overhead); decompression may produce only as much as the
memory limit has room for; OTLP/JSON reserves `JSON_BYTES_PER_BYTE` times its size before it is converted
(Python objects and the upb message it becomes: ~88x for a flood of empty spans, measured). Protobuf is
validated by `inspection`, whose parse scratch (one piece at a time on the loop, one on the worker thread:
at most 2 x 64 KiB x ~85 B/B, ~11 MiB) is part of the agent's fixed overhead rather than reserved per
request. The reservation is given back just before the request is handed to the pipeline, whose exporter
lanes count its bytes from then on. A request cancelled (its client left, or its deadline passed) while
the worker thread still holds its bytes, running or queued, stays counted until the worker is past it
(`release_after_worker`): cancelling calls cannot pile up uncounted bytes behind the one worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import TypeVar

from otlp_agent.api.spec import Signal
from otlp_agent.exporter import memory
from otlp_agent.otlp import compression, errors, inspection, otlp_json, wire

#: Longest a request waits for its memory reservation before it is refused as retryable, in seconds.
RESERVE_WAIT = 5.0
#: What refused clients are told to wait before sending again, in seconds.
RETRY_AFTER = 1.0
_IDENTITY = ("", "identity", "none")  # Content-Encoding values meaning "not compressed"
#: Memory reserved per byte of an OTLP/JSON body while it is converted (measured worst case: ~88).
JSON_BYTES_PER_BYTE = 90


_T = TypeVar("_T")


class ReadDeadlines:
    """Bounds waits on clients (`within`): each wait is registered with its deadline, and one timer, every
    `TICK` seconds while waits are registered, cancels those past theirs. A timer per wait — scheduled
    `readTimeout` ahead and cancelled a few milliseconds later, thousands of times a second, on a heap full
    of cancelled handles — cost ~4.4 µs a request over a bare await; this, a set insertion and removal, costs
    ~1.5 µs (measured, 64 concurrent reads). A wait is refused at most `TICK` after its deadline, never
    before it."""

    TICK = 0.25

    def __init__(self) -> None:
        self._waiting: set[_Wait] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def within(self, read: Awaitable[_T], timeout: float, what: str) -> _T:
        """`await read`, refused as `errors.too_slow` once `timeout` seconds have passed."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        wait = _Wait(task, loop.time() + timeout)
        self._waiting.add(wait)
        if self._timer is None or self._loop is not loop:  # nothing was waiting, or a receiver restarted
            self._loop = loop
            self._timer = loop.call_later(self.TICK, self._tick)
        try:
            return await read
        except asyncio.CancelledError:
            if not wait.expired:
                raise  # the client went away, or the agent is stopping
            task.uncancel()
            raise errors.too_slow(f"{what} not received within {timeout:g}s") from None
        finally:
            self._waiting.discard(wait)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for wait in [wait for wait in self._waiting if wait.deadline <= now]:
            self._waiting.discard(wait)
            wait.expired = True
            wait.task.cancel()
        self._timer = loop.call_later(self.TICK, self._tick) if self._waiting else None


class _Wait:
    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False


@dataclasses.dataclass(frozen=True)
class Received:
    """A validated request: protobuf bytes, their item count, and items rejected while decoding JSON."""

    payload: bytes
    items: int
    rejected: int = 0
    message: str = ""


class Admission:
    """One receiver's limits: `max_size` bytes after decompression, `max_entries` entries a request."""

    def __init__(self, what: str, max_size: int, max_entries: int) -> None:
        self.what = what
        self.max_size = max_size
        self.max_entries = max_entries

    @staticmethod
    def release_after_worker(lease: memory.Lease) -> None:
        """Release `lease` once the worker thread is past the jobs queued so far: for a request cancelled
        while a job of its own, running or queued, may still hold its bytes."""
        inspection.after_worker(lease.release)

    async def reserve(self, limiter: memory.MemoryLimiter, size: int) -> memory.Lease:
        """Reserve `size` bytes for the request being received; the caller releases the lease.

        (Not a context manager: contextlib sets __traceback__ on the frozen ReceiveError it re-raises.)
        Callers on every request's path try `reserve_now` first: no coroutine when there is room (~0.2 µs
        a request, measured)."""
        self._never_fits(limiter, size)
        try:
            return await limiter.reserve(size, RESERVE_WAIT)
        except memory.Busy as exc:
            raise errors.refused(f"{exc}; retry later", RETRY_AFTER, "memory_limit") from None

    def reserve_now(self, limiter: memory.MemoryLimiter, size: int) -> memory.Lease | None:
        """`reserve` without waiting: None when the reservation would have to wait for room."""
        self._never_fits(limiter, size)
        try:
            return limiter.try_reserve(size)
        except memory.Busy as exc:
            raise errors.refused(f"{exc}; retry later", RETRY_AFTER, "memory_limit") from None

    def _never_fits(self, limiter: memory.MemoryLimiter, size: int) -> None:
        if size > limiter.limit:
            raise errors.too_large(
                f"{self.what}: a request of up to {size} bytes cannot fit in the memory limit of "
                f"{limiter.limit} bytes"
            )

    async def decode(
        self, limiter: memory.MemoryLimiter, lease: memory.Lease, raw: bytes, encoding: str
    ) -> bytes:
        """Decompress `raw` (counted in `lease`) into at most the size limit and what memory has room for;
        the output is counted in `lease` too. A large body is decompressed on the worker thread (zlib and
        zstd let go of the GIL meanwhile), its room reserved in `lease` until then."""
        if encoding.strip().lower() in _IDENTITY:  # no new bytes: nothing to make room for
            return self._decode(limiter, lease, raw, encoding, self.max_size)
        bound = min(self.max_size, limiter.limit - limiter.total)
        if len(raw) <= inspection.PIECE_BYTES:
            body = self._decode(limiter, lease, raw, encoding, bound)
        else:
            lease.grow(bound)
            try:
                body = await inspection.off_loop(self._decode, limiter, lease, raw, encoding, bound)
            finally:
                lease.settle(len(raw))
        lease.grow(len(body))
        return body

    def _decode(
        self, limiter: memory.MemoryLimiter, lease: memory.Lease, raw: bytes, encoding: str, bound: int
    ) -> bytes:
        try:
            return compression.decode(raw, encoding, bound)
        except compression.TooLarge as exc:
            if bound == self.max_size:
                raise errors.too_large(str(exc)) from None
            if limiter.total <= lease.size:  # alone in an empty agent, it would still not fit
                raise errors.too_large(
                    f"{self.what}: the decompressed body does not fit in the memory limit of "
                    f"{limiter.limit} bytes"
                ) from None
            raise errors.refused(
                f"memory limit reached decompressing the body ({limiter.total} bytes in use); retry later",
                RETRY_AFTER,
                "memory_limit",
            ) from None
        except compression.BadEncoding as exc:
            unknown = "unsupported Content-Encoding" in str(exc)
            raise (errors.unsupported_media_type if unknown else errors.bad_request)(str(exc)) from None

    async def validate(self, signal: Signal, payload: bytes) -> int:
        """Validate and count a protobuf request (off the event loop when large): its item count."""
        try:
            if len(payload) <= inspection.PIECE_BYTES:
                items = inspection.validate_inline(signal, payload, self.max_entries)
                if items is not None:
                    return items
            return await inspection.off_loop(inspection.validate_and_count, signal, payload, self.max_entries)
        except wire.MalformedPayload as exc:
            raise errors.bad_request(str(exc)) from None
        except inspection.TooManyEntries as exc:
            raise errors.too_many_items(f"{self.what}: {exc} (maxItemsPerRequest)") from None

    async def from_json(
        self, limiter: memory.MemoryLimiter, lease: memory.Lease, signal: Signal, body: bytes
    ) -> Received:
        """Convert an OTLP/JSON body to protobuf on the worker thread, within a reservation for it; the
        protobuf is counted in `lease`."""
        conversion = await self.reserve(limiter, len(body) * JSON_BYTES_PER_BYTE)
        try:
            converted = await inspection.off_loop(_convert, signal, body)
        except otlp_json.JsonError as exc:
            raise errors.bad_request(f"invalid OTLP/JSON: {exc}") from None
        finally:
            conversion.release()
        payload, rejected, error = converted
        lease.grow(len(payload))
        try:
            # Built from JSON, the message skipped upb's parse limits (nesting depth): parse it as every
            # protobuf consumer will, or one such request would make its whole batch unexportable.
            items = await self.validate(signal, payload)
        except errors.ReceiveError as exc:
            if exc.reason != "malformed":
                raise
            raise errors.bad_request(f"OTLP/JSON request not representable as protobuf: {exc}") from None
        return Received(payload, items, rejected, error)


def _convert(signal: Signal, body: bytes) -> tuple[bytes, int, str]:
    converted = otlp_json.parse_request(signal, body)
    return converted.payload, converted.rejected, converted.error
