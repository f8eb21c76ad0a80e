"""Fingerprints of requests some exporters already took: a client's retry is not delivered twice there.

A request is cut into one part per exporter. When some exporters took their part and the client must still
send the request again — another exporter's queue was full, the batch holding another part was not
delivered, or the client went away while waiting — the intake remembers, under the request's fingerprint,
which exporters hold their part and the futures of the batches holding it (`durable` / `endToEnd`; none
for `fast`). When the same request comes back, those exporters skip their part: a `fast` one is done, a
waiting one makes the retry wait on the original batches (so a retry during an outage piles nothing more
into the queue), and one whose batch failed takes the part again.

The fingerprint is SHA-256 (first 16 bytes; ~1.4 GB/s with the CPU's SHA extensions) of the signal, the
authenticated tenant and the request exactly as received: a retry must be byte-for-byte the same request
(OpenTelemetry SDKs and collectors resend the bytes they serialized once). A request is hashed only while
something is remembered — the fast path, every request accepted whole, never hashes — or when it must be
remembered. Requests bound for `endToEnd` exporters are remembered as soon as they are accepted, because
their clients wait on backends and may give up and resend while the first attempt is still waiting.

Bounded: an entry is forgotten `WINDOW` seconds after it was last used, and beyond `MAX_ENTRIES` the
oldest go first. A forgotten entry costs at most a duplicate, never a loss.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

from otlp_agent.api.spec import Signal

#: Seconds an entry is kept after its last use: covers the retry schedules of OpenTelemetry SDKs and of
#: the collector's exporterhelper (5 min max elapsed by default).
WINDOW = 300.0
#: Entries kept at most (~200 bytes each plus the futures they hold).
MAX_ENTRIES = 50_000

Futures = Sequence[asyncio.Future[None]]


@dataclasses.dataclass
class _Entry:
    """Which exporters hold their part of one request, and until when the entry is kept."""

    taken: dict[str, Futures]
    expires: float


class Fingerprints:
    """Remembered requests, oldest first."""

    def __init__(
        self,
        window: float = WINDOW,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}  # insertion order: least recently used first

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def active(self) -> bool:
        """Whether anything is remembered: only then must incoming requests be looked up."""
        return bool(self._entries)

    @staticmethod
    def key(signal: Signal, tenant: str | None, payload: bytes) -> bytes:
        digest = hashlib.sha256(signal.value.encode())
        digest.update(b"\0" + (tenant or "").encode() + b"\0")
        digest.update(payload)
        return digest.digest()[:16]

    def taken(self, key: bytes) -> dict[str, Futures]:
        """Exporters holding their part of the request `key`, with the futures to wait for; an exporter
        whose batch failed is forgotten (it must take the part again)."""
        self._expire()
        entry = self._entries.get(key)
        if entry is None:
            return {}
        for name, futures in list(entry.taken.items()):
            if any(f.done() and (f.cancelled() or f.exception() is not None) for f in futures):
                del entry.taken[name]
        return dict(entry.taken)

    def remember(self, key: bytes, parts: Iterable[tuple[str, Futures]]) -> None:
        """Exporters (with their futures) that now hold their part of the request `key`."""
        entry = self._entries.pop(key, None) or _Entry({}, 0.0)
        entry.taken.update(parts)
        entry.expires = self._clock() + self.window
        self._entries[key] = entry  # most recently used last
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            oldest = next(iter(self._entries))
            if self._entries[oldest].expires > now:
                return
            del self._entries[oldest]
