"""Fault injection and request recording for tests.

``FaultPlan.fail_next("PATCH", r"/otlppipelines/", status=500, times=1)`` makes the next matching request
fail with a metav1.Status error before it reaches the API semantics, so nothing is changed by it.
Every request is recorded (method, path, query, content type, answer code) for assertions.
"""

from __future__ import annotations

import dataclasses
import re

from . import errors

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclasses.dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    message: str


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    content_type: str
    status: int


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []

    def fail_next(
        self, method: str, path_regex: str, status: int = 500, times: int = 1, message: str | None = None
    ) -> None:
        """Fail the next ``times`` requests whose method is ``method`` ("*" for any) and whose path (with
        the query string) matches ``path_regex`` (re.search)."""
        text = message or f"injected fault: {status} for {method} {path_regex}"
        self._faults.append(Fault(method.upper(), re.compile(path_regex), status, times, text))

    def clear(self) -> None:
        """Drop every fault not fired yet (the API answers normally again)."""
        self._faults.clear()

    def check(self, method: str, path_qs: str) -> None:
        for fault in self._faults:
            if fault.times > 0 and fault.method in ("*", method) and fault.path.search(path_qs):
                fault.times -= 1
                raise errors.ApiError(
                    fault.status, _REASONS.get(fault.status, "InternalError"), fault.message
                )

    @property
    def pending(self) -> int:
        """How many injected failures have not fired yet."""
        return sum(f.times for f in self._faults)

    def record(self, method: str, path: str, query: str, content_type: str, status: int) -> None:
        self.requests.append(RecordedRequest(method, path, query, content_type, status))
