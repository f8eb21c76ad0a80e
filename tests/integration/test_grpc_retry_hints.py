"""The retry hint of a gRPC refusal reaches whoever reads it, whichever trailer they read: the official Python
SDK's exporter waits as long as the agent says (it reads `google.rpc.retryinfo-bin`, the collector and the
Go and .NET exporters `grpc-status-details-bin`), and the agent's own gRPC exporter honours a backend's hint
in either trailer, ignoring one it cannot parse."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace.export import SpanExportResult
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.transport import grpc_transport
from otlp_agent.pipeline import intake

from tests.support.agent_runner import agent_running
from tests.support.gated_transport import GatedTransport
from tests.support.otlp_backend import sdk_samples
from tests.support.trace_requests import post, request_bytes
from tests.support.waiting import eventually


async def test_the_sdk_exporter_waits_as_long_as_the_agent_says_and_then_delivers(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = GatedTransport()  # the backend holds every export until the test opens the gate
    body = request_bytes(10, payload=200)
    exporter = {
        "name": "slow",
        "debug": {},
        "queue": {"consumers": 1, "maxBytes": 2 * len(body) + 16, "whenFull": "refuse"},
    }
    pipeline = {"processors": {"batch": {"maxItems": 10, "timeout": "5ms"}}, "exporters": [exporter]}
    async with agent_running(pipeline, transports={"slow": slow}) as agent:
        assert (await post(agent, body))[0] == 200  # in flight at the held backend
        await eventually(lambda: slow.waiting == 1, what="the first batch in flight")
        assert (await post(agent, body))[0] == 200  # queued: no room left for the SDK's request
        await eventually(lambda: len(agent.agent.pipeline.exporters[0].queue) == 1, what="the queue full")

        span_exporter, _, _ = sdk_samples.exporters("grpc", agent.grpc_endpoint, timeout=60)
        for name in [n for n in logging.root.manager.loggerDict if n.startswith("opentelemetry.exporter")]:
            # The SDK drops a log line repeating the last one's template within 20 s; here each one counts.
            monkeypatch.setattr(logging.getLogger(name), "filters", [])

        def refused() -> float:
            return agent.metric(
                "otlp_agent_refused_requests_total", signal="traces", transport="grpc", reason="queue_full"
            )

        spans = sdk_samples.make_spans(20, {"service.name": "hinted"})
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            exporting = asyncio.ensure_future(asyncio.to_thread(span_exporter.export, spans))
            await eventually(lambda: refused() >= 2, timeout=30, what="two refusals of the SDK's request")
            slow.gate.set()  # the backend recovers: the queue empties and the next attempt is taken
            assert await exporting == SpanExportResult.SUCCESS
        span_exporter.shutdown()
        await eventually(lambda: slow.items == 20 + 20, what="everything exported")

    # The SDK logs each wait it chose: the agent's hint every time, never its own backoff (~1 s, ~2 s, ...).
    waits = re.findall(r"retrying in ([\d.]+)s", caplog.text)
    hint = f"{intake.REFUSAL_RETRY_AFTER:.2f}"
    assert len(waits) >= 2 and set(waits) == {hint}, waits


def _status_trailer(seconds: float) -> tuple[str, bytes]:
    status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message="busy")
    status.details.add().Pack(_retry_info(seconds))
    return ("grpc-status-details-bin", status.SerializeToString())


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def _bare_trailer(seconds: float) -> tuple[str, bytes]:
    return ("google.rpc.retryinfo-bin", _retry_info(seconds).SerializeToString())


class RefusingBackend:
    """A gRPC server (port 0) that refuses every export UNAVAILABLE with the trailers it is given."""

    def __init__(self) -> None:
        self.trailers: tuple[tuple[str, bytes], ...] = ()
        self.server = grpc.aio.server()
        self.port = 0

    async def __aenter__(self) -> RefusingBackend:
        async def export(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy", trailing_metadata=self.trailers)
            raise AssertionError("unreachable: abort() raises")

        handler = grpc.unary_unary_rpc_method_handler(export)
        service = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
        )
        self.server.add_generic_rpc_handlers([service])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(None)


@pytest.fixture
async def refusing() -> AsyncIterator[RefusingBackend]:
    async with RefusingBackend() as backend:
        yield backend


@pytest.mark.parametrize(
    ("trailers", "expected"),
    [
        ((_status_trailer(2.5),), 2.5),  # the OTLP specification's place (the collector's answer)
        ((_bare_trailer(1.25),), 1.25),  # the bare RetryInfo some servers send for the Python SDK
        ((_status_trailer(3.0), _bare_trailer(3.0)), 3.0),  # both, as the agent itself sends them
        ((("grpc-status-details-bin", b"\xff\xfe not a status"), _bare_trailer(0.5)), 0.5),
        ((("grpc-status-details-bin", b"\xff\xfe not a status"),), None),  # no hint: its own backoff
    ],
)
async def test_the_agents_grpc_exporter_honours_a_retry_hint_in_either_trailer(
    refusing: RefusingBackend, trailers: tuple[tuple[str, bytes], ...], expected: float | None
) -> None:
    refusing.trailers = trailers
    settings = spec.Exporter.model_validate(
        {"name": "be", "endpoint": f"http://127.0.0.1:{refusing.port}", "protocol": "grpc"}
    )
    transport = grpc_transport.GrpcTransport(settings)
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name="s", trace_id=b"\x01" * 16, span_id=b"\x02" * 8
    )
    payload = request.SerializeToString()
    try:
        result = await transport.export(Batch(spec.Signal.traces, [payload], 1, len(payload)), timeout=5)
    finally:
        await transport.close()
    assert (result.ok, result.retryable) == (False, True)
    assert result.retry_after == (pytest.approx(expected) if expected is not None else None)
