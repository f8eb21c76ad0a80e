"""The outcome of one export attempt, as the senders and the lane read it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What the backend said about one attempt."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None  # from Retry-After / RetryInfo
    rejected: int = 0  # partial success: items the backend refused (never retried)
    message: str = ""
    wire_bytes: int = 0  # bytes sent after compression
    gave_up: bool = False  # retryable, but retries ran out (retry.maxElapsed)
    expired: bool = False  # never sent again: older than queue.maxAge
    too_large: bool = False  # refused for its size (HTTP 413, gRPC RESOURCE_EXHAUSTED about size)
    dropped: int = 0  # items the sender gave up on and counted itself (see sender/split.py)

    @classmethod
    def success(cls, wire_bytes: int = 0, rejected: int = 0, message: str = "") -> ExportResult:
        return cls(ok=True, rejected=rejected, message=message, wire_bytes=wire_bytes)

    @classmethod
    def failure(
        cls, message: str, retryable: bool, retry_after: float | None = None, too_large: bool = False
    ) -> ExportResult:
        return cls(
            ok=False, retryable=retryable, retry_after=retry_after, message=message, too_large=too_large
        )
