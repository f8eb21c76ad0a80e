"""What went wrong, whether to retry, and how each outcome maps to gRPC and HTTP per the OTLP spec.

Receivers raise `ReceiveError`s and this module turns them into statuses; exporters classify a backend's
answer with `grpc_retryable` / `http_retryable`. Keeping both directions here means the agent answers its
clients with exactly the semantics it expects from its backends.
"""

from __future__ import annotations

import dataclasses
import email.utils
import time

import grpc

# OTLP spec: retryable gRPC codes. RESOURCE_EXHAUSTED only when the server sent RetryInfo.
_GRPC_RETRYABLE = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
_HTTP_RETRYABLE = {429, 502, 503, 504}


@dataclasses.dataclass(eq=False)  # not frozen: Python sets __traceback__ on exceptions it raises
class ReceiveError(Exception):
    """A request the agent will not take; `http_status` and `grpc_code` say how clients hear about it."""

    message: str
    http_status: int
    grpc_code: grpc.StatusCode
    reason: str  # metric label
    retry_after: float | None = None  # seconds; set for retryable refusals

    def __str__(self) -> str:
        return self.message


def detached(error: ReceiveError) -> ReceiveError:
    """`error` without its traceback and chained exceptions: their frames hold the request's bytes, and
    a refusal kept for later (grpc keeps the exception its handler raised) would keep them alive."""
    error.__traceback__ = error.__context__ = error.__cause__ = None
    return error


def bad_request(message: str) -> ReceiveError:
    return ReceiveError(message, 400, grpc.StatusCode.INVALID_ARGUMENT, "malformed")


def too_large(message: str) -> ReceiveError:
    """Too big for this agent, ever: RESOURCE_EXHAUSTED without RetryInfo is not retried (OTLP spec)."""
    return ReceiveError(message, 413, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large")


def too_many_items(message: str) -> ReceiveError:
    """More entries than one request may hold: refused for good, like `too_large`."""
    return ReceiveError(message, 413, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_items")


def too_slow(message: str) -> ReceiveError:
    """The client did not deliver its request in time."""
    return ReceiveError(message, 408, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout")


def unsupported_media_type(message: str) -> ReceiveError:
    return ReceiveError(message, 415, grpc.StatusCode.INVALID_ARGUMENT, "unsupported_media_type")


def refused(message: str, retry_after: float, reason: str) -> ReceiveError:
    """A retryable refusal (memory or queue full): clients back off and send again."""
    return ReceiveError(message, 503, grpc.StatusCode.UNAVAILABLE, reason, retry_after)


def grpc_retryable(code: grpc.StatusCode, has_retry_info: bool) -> bool:
    """Whether an export that failed with `code` may be retried (OTLP spec)."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return has_retry_info
    return code in _GRPC_RETRYABLE


def http_retryable(status: int) -> bool:
    """Whether an export answered with HTTP `status` may be retried (OTLP spec)."""
    return status in _HTTP_RETRYABLE


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
