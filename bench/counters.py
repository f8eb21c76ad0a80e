"""Counters shared between the benchmark's processes, readable by the runner at any moment.

Each counter set is a lock-free `multiprocessing` int64 array written by exactly one process (the sink,
or one load-generator worker); the runner only reads, so snapshots need no lock (aligned 8-byte reads are
atomic on the platforms we run on). Named fields keep call sites readable.
"""

from __future__ import annotations

import multiprocessing.sharedctypes
from dataclasses import dataclass
from typing import Any, ClassVar

SINK_FIELDS = ("requests", "spans", "wire_bytes", "decoded_bytes", "bad_requests")
CLIENT_FIELDS = (
    "sent",  # requests whose outcome is known
    "accepted",  # requests answered with success
    "accepted_spans",
    "retryable",  # requests refused with a retryable status (the client would retry)
    "retryable_spans",
    "retry_hint",  # refusals that carried RetryInfo / Retry-After
    "non_retryable",  # any other non-success status: data the client would drop
    "transport_errors",  # connection refused/reset, timeouts
    "latency_us",  # sum over answered requests
    "not_sent",  # open-loop sends skipped because every in-flight slot was busy
)


@dataclass
class Counters:
    """A named view over a shared int64 array."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    array: Any

    @classmethod
    def create(cls, ctx: Any = None) -> Counters:
        make = ctx.RawArray if ctx is not None else multiprocessing.sharedctypes.RawArray
        return cls(make("q", len(cls.FIELDS)))

    def add(self, name: str, value: int = 1) -> None:
        self.array[self.FIELDS.index(name)] += value

    def snapshot(self) -> dict[str, int]:
        values = list(self.array)
        return dict(zip(self.FIELDS, values, strict=True))


class SinkCounters(Counters):
    FIELDS = SINK_FIELDS


class ClientCounters(Counters):
    FIELDS = CLIENT_FIELDS


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Field-wise difference of two snapshots."""
    return {key: after[key] - before.get(key, 0) for key in after}


def total(snapshots: list[dict[str, int]]) -> dict[str, int]:
    """Field-wise sum of snapshots (one per worker)."""
    summed: dict[str, int] = {}
    for snap in snapshots:
        for key, value in snap.items():
            summed[key] = summed.get(key, 0) + value
    return summed
