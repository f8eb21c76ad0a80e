"""Faults the test backend can apply to a request, and how one fault reads on each transport.

A `Fault` is transport-neutral where it can be: a fault that names only a gRPC code answers HTTP clients
with the matching HTTP status (and the other way round), and a retry hint given as `retry_after` also
reaches gRPC clients as `RetryInfo` (and `retry_info_delay` reaches HTTP clients as `Retry-After`), so one
scripted fault means the same thing whichever protocol the agent under test speaks.
"""

from __future__ import annotations

import dataclasses

import grpc

# gRPC code -> HTTP status, following the gRPC/HTTP mapping that OTLP receivers use (429 is OTLP's
# "throttled", 503 its "try again later").
_HTTP_FOR_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

_GRPC_FOR_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status an OTLP/HTTP receiver answers for a gRPC status code."""
    return _HTTP_FOR_GRPC.get(code, 500)


def grpc_code_for(status: int) -> grpc.StatusCode:
    """The gRPC status code an OTLP/gRPC receiver answers for an HTTP status."""
    if 200 <= status < 300:
        return grpc.StatusCode.OK
    fallback = grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL
    return _GRPC_FOR_HTTP.get(status, fallback)


@dataclasses.dataclass(frozen=True)
class Fault:
    """What the backend does instead of (or before) accepting one request.

    Fields combine: `delay` first hangs, then the rest applies (a delay alone answers success if the
    client is still waiting). `drop_connection` wins over status codes; a status code wins over
    `partial_rejected`.
    """

    grpc_code: grpc.StatusCode | None = None  # gRPC status to answer (HTTP gets the mapped status)
    http_status: int | None = None  # HTTP status to answer (gRPC gets the mapped code)
    retry_after: str | None = None  # HTTP Retry-After value; if numeric, also RetryInfo for gRPC
    retry_info_delay: float | None = None  # seconds, google.rpc.RetryInfo in the gRPC status details
    delay: float | None = None  # seconds to hang before answering
    drop_connection: bool = False  # close the connection without any answer
    partial_rejected: int | None = None  # answer success with partial_success rejecting this many items
    message: str = "fault injected by the test backend"
    # Conditional faults: they refuse only the requests they describe and accept the others.
    refused_encodings: frozenset[str] = frozenset()  # 415 / UNIMPLEMENTED for a body in these encodings
    max_body_bytes: int | None = None  # 413 / RESOURCE_EXHAUSTED for a larger (decompressed) body

    @classmethod
    def unavailable(cls, retry_after: float | None = None) -> Fault:
        """The backend is overloaded: gRPC UNAVAILABLE / HTTP 503, with an optional retry hint."""
        return cls(grpc_code=grpc.StatusCode.UNAVAILABLE, http_status=503, retry_info_delay=retry_after)

    @classmethod
    def throttled(cls, retry_after: float | None = None) -> Fault:
        """The backend throttles: gRPC RESOURCE_EXHAUSTED / HTTP 429, with an optional retry hint."""
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
        return cls(grpc_code=code, http_status=429, retry_info_delay=retry_after)

    @classmethod
    def invalid(cls) -> Fault:
        """The backend refuses the data for good: gRPC INVALID_ARGUMENT / HTTP 400 (never retryable)."""
        return cls(grpc_code=grpc.StatusCode.INVALID_ARGUMENT, http_status=400)

    @classmethod
    def refusing_encodings(cls, *encodings: str) -> Fault:
        """A backend that cannot read these Content-Encodings (or gRPC compression algorithms): HTTP 415,
        gRPC UNIMPLEMENTED naming the algorithm, as grpc-core says it. Other requests are accepted."""
        return cls(refused_encodings=frozenset(encodings))

    @classmethod
    def size_limit(cls, max_body_bytes: int) -> Fault:
        """A backend that refuses requests whose decompressed body is larger than `max_body_bytes`: HTTP
        413, gRPC RESOURCE_EXHAUSTED with a size message and no RetryInfo. Other requests are accepted."""
        return cls(max_body_bytes=max_body_bytes)

    def applied_to(self, encoding: str, size: int) -> Fault | None:
        """What a conditional fault does to a request in `encoding` with a `size`-byte body: the refusal,
        or None (accept it). A fault without conditions applies to every request as it is."""
        if encoding in self.refused_encodings:
            message = f"Compression algorithm '{encoding}' is not supported"
            return Fault(grpc_code=grpc.StatusCode.UNIMPLEMENTED, http_status=415, message=message)
        if self.max_body_bytes is not None and size > self.max_body_bytes:
            message = f"request of {size} bytes exceeds the size limit of {self.max_body_bytes} bytes"
            return Fault(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, http_status=413, message=message)
        if self.refused_encodings or self.max_body_bytes is not None:
            return None
        return self

    @property
    def is_error(self) -> bool:
        """Whether this fault answers with a non-success status."""
        return self.grpc_code is not None or self.http_status is not None

    def grpc_status(self) -> grpc.StatusCode:
        """The gRPC code this fault answers with (mapped from `http_status` if only that is set)."""
        if self.grpc_code is not None:
            return self.grpc_code
        assert self.http_status is not None, "grpc_status() of a fault without a status"
        return grpc_code_for(self.http_status)

    def http_code(self) -> int:
        """The HTTP status this fault answers with (mapped from `grpc_code` if only that is set)."""
        if self.http_status is not None:
            return self.http_status
        assert self.grpc_code is not None, "http_code() of a fault without a status"
        return http_status_for(self.grpc_code)

    def retry_after_header(self) -> str | None:
        """The Retry-After header value for HTTP answers, if the fault carries a retry hint."""
        if self.retry_after is not None:
            return self.retry_after
        if self.retry_info_delay is None:
            return None
        delay = self.retry_info_delay
        return str(int(delay)) if float(delay).is_integer() else repr(float(delay))

    def retry_delay_seconds(self) -> float | None:
        """The RetryInfo delay for gRPC answers, if the fault carries a (numeric) retry hint."""
        if self.retry_info_delay is not None:
            return self.retry_info_delay
        if self.retry_after is None:
            return None
        try:
            return float(self.retry_after)
        except ValueError:  # an HTTP-date: no exact gRPC equivalent, so no RetryInfo
            return None

    def describe(self) -> str:
        """A short human-readable summary, used in recordings and assertion messages."""
        fields = [f for f in dataclasses.fields(self) if f.name != "message"]
        changed = [f for f in fields if getattr(self, f.name) != f.default]
        return "Fault(" + ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in changed) + ")"
