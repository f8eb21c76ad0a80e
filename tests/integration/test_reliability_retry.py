"""The real gRPC and HTTP exporters against a fault-injecting backend, under the retry sender on a fake
clock: every status class, throttling hints (RetryInfo, Retry-After in seconds and as an HTTP date), a
backend that hangs past the timeout or drops the connection, and partial success — no real waiting."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.exporter.transport.factory import make_transport
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock
from tests.support.otlp_backend import Fault, OtlpBackend

RETRYABLE_GRPC = ["CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"]
PERMANENT_GRPC = ["INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED", "INTERNAL"]
PERMANENT_GRPC += ["FAILED_PRECONDITION", "UNIMPLEMENTED", "ALREADY_EXISTS"]
RETRYABLE_HTTP = [429, 502, 503, 504]
PERMANENT_HTTP = [400, 401, 403, 404, 413, 500, 501]


@pytest.fixture(scope="module")
def shared_backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as backend:
        yield backend


@pytest.fixture
def backend(shared_backend: OtlpBackend) -> OtlpBackend:
    shared_backend.clear_faults()
    shared_backend.reset()
    return shared_backend


class Harness:
    """A retry sender with a real transport to the backend and a fake clock."""

    def __init__(self, backend: OtlpBackend, protocol: str, **exporter: Any) -> None:
        endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
        retry = {"initialInterval": "1s", "maxInterval": "30s", "multiplier": 2, "jitter": 0}
        retry |= exporter.pop("retry", {})
        settings = spec.Exporter.model_validate(
            {"name": "be", "endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}
            | {"retry": retry, "timeout": "2s"}
            | exporter
        )
        self.clock = FakeClock()
        self.metrics = AgentMetrics()
        self.sender = RetrySender(
            settings, make_transport(settings), self.metrics, clock=self.clock, sleep=self.clock.sleep
        )

    async def send(self, spans: int = 3) -> ExportResult:
        request = trace_service_pb2.ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for index in range(spans):
            scope.spans.add(name=f"s{index}", trace_id=b"\x01" * 16, span_id=(index + 1).to_bytes(8, "big"))
        payload = request.SerializeToString()
        return await self.sender.send(Batch(spec.Signal.traces, [payload], spans, len(payload)))


@pytest.fixture(params=["grpc", "http/protobuf"])
async def harness(request: pytest.FixtureRequest, backend: OtlpBackend) -> AsyncIterator[Harness]:
    harness = Harness(backend, request.param)
    yield harness
    await harness.sender.transport.close()


def outcomes(backend: OtlpBackend) -> list[str]:
    return [r.outcome for r in backend.requests]


@pytest.mark.parametrize(
    ("code", "retried"),
    [(c, True) for c in RETRYABLE_GRPC] + [(c, False) for c in PERMANENT_GRPC],
)
async def test_grpc_status_codes_are_retried_exactly_as_the_spec_says(
    backend: OtlpBackend, code: str, retried: bool
) -> None:
    harness = Harness(backend, "grpc")
    backend.script(Fault(grpc_code=grpc.StatusCode[code], message=f"backend says {code}"))
    result = await harness.send()
    await harness.sender.transport.close()
    assert result.ok == retried
    assert outcomes(backend) == (["error", "accepted"] if retried else ["error"])
    if not retried:
        assert f"backend says {code}" in result.message, "the backend's message is kept for the log"


@pytest.mark.parametrize(
    ("status", "retried"),
    [(s, True) for s in RETRYABLE_HTTP] + [(s, False) for s in PERMANENT_HTTP],
)
async def test_http_statuses_are_retried_exactly_as_the_spec_says(
    backend: OtlpBackend, status: int, retried: bool
) -> None:
    harness = Harness(backend, "http/protobuf")
    backend.script(Fault(http_status=status, message=f"backend says {status}"))
    result = await harness.send()
    await harness.sender.transport.close()
    assert result.ok == retried
    assert outcomes(backend) == (["error", "accepted"] if retried else ["error"])
    if not retried:
        assert result.message == f"HTTP {status}: backend says {status}"


async def test_grpc_retry_info_sets_the_wait(backend: OtlpBackend) -> None:
    harness = Harness(backend, "grpc")
    backend.script(Fault.unavailable(retry_after=12.5))
    assert (await harness.send()).ok
    await harness.sender.transport.close()
    assert harness.clock.sleeps == [12.5]


async def test_resource_exhausted_is_retried_only_when_the_backend_sends_retry_info(
    backend: OtlpBackend,
) -> None:
    harness = Harness(backend, "grpc")
    backend.script(Fault.throttled(retry_after=None))
    refused = await harness.send()
    assert not refused.ok and not refused.retryable and outcomes(backend) == ["error"]
    backend.reset()
    backend.script(Fault.throttled(retry_after=4.0))
    assert (await harness.send()).ok
    await harness.sender.transport.close()
    assert outcomes(backend) == ["error", "accepted"] and harness.clock.sleeps == [4.0]


async def test_http_retry_after_in_seconds_sets_the_wait(backend: OtlpBackend) -> None:
    harness = Harness(backend, "http/protobuf")
    backend.script(Fault(http_status=429, retry_after="17"))
    assert (await harness.send()).ok
    await harness.sender.transport.close()
    assert harness.clock.sleeps == [17.0]


async def test_http_retry_after_as_a_date_waits_until_that_date(backend: OtlpBackend) -> None:
    harness = Harness(backend, "http/protobuf")
    backend.script(Fault(http_status=503, retry_after=email.utils.formatdate(time.time() + 40, usegmt=True)))
    assert (await harness.send()).ok
    await harness.sender.transport.close()
    [wait] = harness.clock.sleeps
    # The date has one-second precision and the round trip took some (wall-clock) time: the wait is the 40 s
    # to that date less those, nowhere near the 1 s backoff (10 s of slack for a loaded machine).
    assert 30.0 <= wait <= 40.0


async def test_a_hint_shorter_than_the_backoff_does_not_shorten_it(backend: OtlpBackend) -> None:
    harness = Harness(backend, "http/protobuf", retry={"initialInterval": "8s"})
    backend.script(Fault(http_status=503, retry_after="2"))
    assert (await harness.send()).ok
    await harness.sender.transport.close()
    assert harness.clock.sleeps == [8.0]


async def test_partial_success_is_never_retried(harness: Harness, backend: OtlpBackend) -> None:
    backend.script(Fault(partial_rejected=2, message="2 spans too old"))
    result = await harness.send()
    assert result.ok and result.rejected == 2 and result.message == "2 spans too old"
    assert outcomes(backend) == ["partial_rejected"] and harness.clock.sleeps == []


async def test_a_backend_that_hangs_past_the_timeout_is_retried(backend: OtlpBackend) -> None:
    for protocol in ("grpc", "http/protobuf"):
        backend.reset()
        harness = Harness(backend, protocol, timeout="200ms")
        backend.script(Fault(delay=5.0))
        result = await harness.send()
        await harness.sender.transport.close()
        assert result.ok, protocol
        # One timeout, then the first backoff; a loaded machine may time out a later attempt too.
        assert harness.clock.sleeps[:1] == [1.0], protocol
        assert backend.accepted_items("traces") == 3


async def test_a_backend_that_drops_the_connection_is_retried(harness: Harness, backend: OtlpBackend) -> None:
    backend.script(Fault(drop_connection=True))
    assert (await harness.send()).ok
    assert outcomes(backend) == ["dropped", "accepted"]


async def test_a_backend_down_far_longer_than_max_elapsed_costs_no_batch(backend: OtlpBackend) -> None:
    harness = Harness(backend, "http/protobuf", retry={"maxElapsed": "20s"})
    backend.script(*[Fault.unavailable()] * 8)  # down for three minutes, nine times maxElapsed
    result = await harness.send()
    await harness.sender.transport.close()
    assert result.ok
    # backoff 1, 2; the third failure opens the circuit until 30s later; the backoff (4, 8, 16, then 30s)
    # overlaps the cool-down, and the circuit holds the rest (26, 22, 14s): none of it counts toward
    # maxElapsed, only the 3s of retrying before the circuit opened
    assert harness.clock.sleeps == [1.0, 2.0, 4.0, 26.0, 8.0, 22.0, 16.0, 14.0, 30.0, 30.0, 30.0]
    assert len(backend.requests) == 9 and harness.clock.now == 183
