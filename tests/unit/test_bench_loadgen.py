"""The load generator builds valid OTLP/HTTP requests, reads responses, and classifies every outcome."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench import http1, loadgen, payloads, wire
from bench.counters import ClientCounters
from tests.support import network

pytestmark = pytest.mark.timeout(30)


def test_payloads_are_realistic_and_distinct():
    bodies = payloads.build_bodies(count=4, spans=100)
    assert len(set(bodies)) == 4
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(bodies[0])
    resource = {kv.key for kv in request.resource_spans[0].resource.attributes}
    assert {"service.name", "k8s.pod.name", "k8s.namespace.name", "k8s.node.name"} <= resource
    spans = request.resource_spans[0].scope_spans[0].spans
    assert len(spans) == 100
    assert all(9 <= len(span.attributes) <= 12 for span in spans)
    assert len({span.trace_id for span in spans}) == 20  # traces of five spans
    assert all(len(span.trace_id) == 16 and len(span.span_id) == 8 for span in spans)


def test_built_request_is_a_complete_http_message():
    body = payloads.build_bodies(count=1, spans=10)[0]
    raw = http1.build_request("127.0.0.1", 4318, body)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/traces HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/x-protobuf"
    assert int(headers["Content-Length"]) == len(body)
    assert rest == body


def test_response_head_parsing():
    status, headers = http1.parse_head(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0"
    )
    assert status == 503
    assert headers == {"retry-after": "2", "content-length": "0"}


def test_garbage_status_line_is_an_error():
    with pytest.raises(ValueError):
        http1.parse_head(b"SSH-2.0-OpenSSH")


@pytest.mark.parametrize(
    ("code", "hint", "expected"),
    [
        ("OK", False, loadgen.ACCEPTED),
        ("UNAVAILABLE", True, loadgen.RETRYABLE),
        ("DEADLINE_EXCEEDED", False, loadgen.RETRYABLE),
        ("RESOURCE_EXHAUSTED", True, loadgen.RETRYABLE),
        ("RESOURCE_EXHAUSTED", False, loadgen.NON_RETRYABLE),
        ("INVALID_ARGUMENT", False, loadgen.NON_RETRYABLE),
        ("INTERNAL", False, loadgen.NON_RETRYABLE),
    ],
)
def test_grpc_statuses_are_classified_per_the_otlp_spec(code, hint, expected):
    assert loadgen.classify_grpc(code, hint) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, loadgen.ACCEPTED),
        (503, loadgen.RETRYABLE),
        (429, loadgen.RETRYABLE),
        (502, loadgen.RETRYABLE),
        (400, loadgen.NON_RETRYABLE),
        (413, loadgen.NON_RETRYABLE),
        (500, loadgen.NON_RETRYABLE),
    ],
)
def test_http_statuses_are_classified_per_the_otlp_spec(status, expected):
    assert loadgen.classify_http(status) == expected


def test_recorder_counts_spans_only_for_accepted_requests():
    counters = ClientCounters.create()
    recorder = loadgen.Recorder(counters, spans_per_request=100)
    recorder.record(loadgen.ACCEPTED, "grpc:OK", 0.0)
    recorder.record(loadgen.RETRYABLE, "grpc:UNAVAILABLE", 0.0, hint=True)
    recorder.record(loadgen.NON_RETRYABLE, "grpc:INVALID_ARGUMENT", 0.0)
    recorder.transport_error(ConnectionResetError())
    snap = counters.snapshot()
    assert snap["sent"] == 4
    assert (snap["accepted"], snap["accepted_spans"]) == (1, 100)
    assert (snap["retryable"], snap["retryable_spans"], snap["retry_hint"]) == (1, 100, 1)
    assert snap["non_retryable"] == 1
    assert snap["transport_errors"] == 1
    assert recorder.codes == {
        "grpc:OK": 1,
        "grpc:UNAVAILABLE": 1,
        "grpc:INVALID_ARGUMENT": 1,
        "transport:ConnectionResetError": 1,
    }


async def test_http_sender_reuses_its_connection_and_sees_refusals():
    seen: list[int] = []
    answers = iter([200, 503, 200])

    async def handler(request: web.Request) -> web.Response:
        seen.append(wire.count_spans(await request.read()))
        status = next(answers)
        headers = {"Retry-After": "1"} if status == 503 else {}
        return web.Response(status=status, headers=headers, body=b"")

    app = web.Application()
    app.router.add_post("/v1/traces", handler)
    runner = web.AppRunner(app)
    port = await network.serve(runner)
    body = payloads.build_bodies(count=1, spans=25)[0]
    counters = ClientCounters.create()
    config = loadgen.LoadConfig(protocol="http", port=port, bodies=(body,), spans_per_request=25)
    sender = loadgen.HttpSender(config, loadgen.Recorder(counters, 25))
    slot = sender.new_slot()
    try:
        async with asyncio.timeout(10):
            for _ in range(3):
                await sender.send(slot, body)
            writer = slot.writer
            assert writer is not None  # still the same keep-alive connection
    finally:
        await sender.close()
        await runner.cleanup()
    assert seen == [25, 25, 25]
    snap = counters.snapshot()
    assert (snap["accepted_spans"], snap["retryable"], snap["retry_hint"]) == (50, 1, 1)
