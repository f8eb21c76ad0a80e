"""The memory limiter: counts the bytes the agent holds and tells receivers when to refuse.

Bytes are acquired when a request is accepted (once per exporter that keeps a reference, which
over-counts fan-out and so errs on the safe side) and released when that exporter is done with them
(exported, rejected or dropped). Above `limit - spikeLimit`, receivers refuse new data with a retryable
status so clients back off instead of the pod being OOM-killed. A reload hands the same limiter to the new
pipeline, so the old pipeline's bytes still count while it drains.
"""

from __future__ import annotations


class MemoryLimiter:
    """Byte accounting with a soft (refuse) and hard (never exceed) limit."""

    def __init__(self, limit: int, spike_limit: int) -> None:
        self.held = 0
        self.configure(limit, spike_limit)

    def configure(self, limit: int, spike_limit: int) -> None:
        """Set the limits (again, after a config reload: the bytes held stay counted)."""
        self.limit = limit
        self.soft_limit = limit - spike_limit

    def would_admit(self, size: int) -> bool:
        """Whether a new request of `size` bytes (times its fan-out) may be accepted now."""
        return self.held < self.soft_limit and self.held + size <= self.limit

    def acquire(self, size: int) -> None:
        self.held += size

    def release(self, size: int) -> None:
        self.held = max(0, self.held - size)
