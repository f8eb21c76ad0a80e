"""The test OTLP backend, driven by the official OpenTelemetry SDK exporters and by raw gRPC/HTTP clients.

What a client sees (status, headers, trailers, dropped connections, timeouts) and what the backend records
(ids, attributes, resources, encodings, outcomes) are both checked, since integration tests rely on both.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import time
import zlib

import aiohttp
import grpc
import pytest
import requests
import zstandard
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.support.otlp_backend import Fault, OtlpBackend, attributes, sdk_samples

RESOURCE = {"service.name": "checkout", "deployment.environment": "unit"}
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")


def trace_request(spans: int = 2) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "raw-client"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "raw"
    for index in range(spans):
        scope_spans.spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, parent_span_id=PARENT_ID, name=f"s{index}")
    return request


def grpc_export(backend: OtlpBackend, body: bytes, **kwargs: object) -> tuple[bytes, grpc.Call]:
    with grpc.insecure_channel(backend.grpc_endpoint) as channel:
        return channel.unary_unary(TRACE_EXPORT).with_call(body, timeout=5, **kwargs)


def grpc_error(backend: OtlpBackend, body: bytes, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(backend, body, **kwargs)
    return caught.value


def http_post(backend: OtlpBackend, body: bytes, *, content_type: str, encoding: str | None = None):
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {})}
    return requests.post(f"{backend.http_endpoint}/v1/traces", data=body, headers=headers, timeout=5)


# -- delivery through the official SDK exporters -------------------------------------------------------


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporters_deliver_spans_metrics_and_logs_as_sent(backend: OtlpBackend, transport: str) -> None:
    endpoint = backend.grpc_endpoint if transport == "grpc" else backend.http_endpoint
    span_exporter, metric_exporter, log_exporter = sdk_samples.exporters(
        transport, endpoint, headers={"x-tenant": "acme"}
    )
    spans = sdk_samples.make_spans(4, RESOURCE, {"http.route": "/cart"})
    assert span_exporter.export(spans) == SpanExportResult.SUCCESS
    assert metric_exporter.export(sdk_samples.make_metrics(RESOURCE)) == MetricExportResult.SUCCESS
    assert log_exporter.export(sdk_samples.make_logs(3, RESOURCE)) == LogRecordExportResult.SUCCESS
    for exporter in (span_exporter, metric_exporter, log_exporter):
        exporter.shutdown()

    def ids(trace_id: int, span_id: int) -> tuple[bytes, bytes]:
        return trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big")

    sent = {
        (*ids(s.context.trace_id, s.context.span_id), s.parent and ids(0, s.parent.span_id)[1]) for s in spans
    }
    got = {(span.trace_id, span.span_id, span.parent_span_id or None) for _, _, span in backend.spans()}
    assert got == sent and sum(parent is None for *_, parent in got) == 2, "two roots, two children"
    resource, scope, _ = backend.spans()[0]
    assert resource["service.name"] == "checkout" and resource["deployment.environment"] == "unit"
    assert scope == sdk_samples.SCOPE
    roots = [attributes(span.attributes) for _, _, span in backend.spans() if not span.parent_span_id]
    assert sorted((a["index"], a["http.route"]) for a in roots) == [(0, "/cart"), (2, "/cart")]
    assert {(name, point.as_int) for _, name, point in backend.data_points() if name == "requests"} == {
        ("requests", 3),
        ("requests", 4),
    }
    assert sorted(r.body.string_value for _, _, r in backend.log_records()) == ["log-0", "log-1", "log-2"]

    recorded = backend.requests
    assert [r.signal for r in recorded] == ["traces", "metrics", "logs"]
    assert [r.items for r in recorded] == [4, 3, 3]
    assert all(r.transport == transport and r.content_encoding == "gzip" for r in recorded)
    assert all(r.headers["x-tenant"] == "acme" and r.outcome == "accepted" for r in recorded)
    assert all(0 < r.wire_size != len(r.body) for r in recorded), "wire size is the compressed size"


def test_sdk_grpc_request_body_is_the_exact_protobuf_the_client_serialized(backend: OtlpBackend) -> None:
    request = trace_request(3)
    _, call = grpc_export(backend, request.SerializeToString(), compression=grpc.Compression.Deflate)
    assert call.code() == grpc.StatusCode.OK
    (recorded,) = backend.requests
    assert recorded.body == request.SerializeToString()
    assert recorded.content_encoding == "deflate" and recorded.content_type == "application/grpc"
    assert backend.accepted("traces") == [request]


# -- HTTP encodings and OTLP/JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("zstd", lambda data: zstandard.ZstdCompressor(level=1).compress(data)),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw deflate, as some clients send
        ("gzip", gzip.compress),
        (None, lambda data: data),
    ],
)
def test_http_content_encodings_are_decoded_and_recorded(backend: OtlpBackend, encoding, compress) -> None:
    body = trace_request(5).SerializeToString()
    wire_body = compress(body)
    answer = http_post(backend, wire_body, content_type="application/x-protobuf", encoding=encoding)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/x-protobuf"
    trace_service_pb2.ExportTraceServiceResponse.FromString(answer.content)
    (recorded,) = backend.requests
    assert (recorded.content_encoding, recorded.wire_size, recorded.body) == (
        encoding or "identity",
        len(wire_body),
        body,
    )
    assert backend.accepted_items("traces") == 5


async def test_otlp_json_with_hex_ids_is_recorded_as_protobuf_and_answered_in_json() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json-scope"},
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex(),
                                "spanId": SPAN_ID.hex(),
                                "parentSpanId": PARENT_ID.hex().upper(),
                                "name": "GET /",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "links": [{"traceId": TRACE_ID.hex(), "spanId": PARENT_ID.hex()}],
                                "attributes": [{"key": "retries", "value": {"intValue": "3"}}],
                                "someFutureField": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    async with OtlpBackend() as backend, aiohttp.ClientSession() as session:
        url = f"{backend.http_endpoint}/v1/traces"
        async with session.post(url, json=document) as answer:
            assert answer.status == 200 and answer.content_type == "application/json"
            assert await answer.json() == {}
        (resource, scope, span) = backend.spans()[0]
    assert (resource, scope) == ({"service.name": "json-app"}, "json-scope")
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert (span.links[0].trace_id, span.links[0].span_id) == (TRACE_ID, PARENT_ID)
    assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER and span.start_time_unix_nano == 1700000000000000000
    assert backend.requests[0].content_type == "application/json"


def test_otlp_json_logs_and_metric_exemplars_carry_hex_ids_too(backend: OtlpBackend) -> None:
    ids = {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex()}
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "hi"}, **ids}]}]}]}
    point = {"asInt": "5", "exemplars": [{"asInt": "5", **ids}]}
    metrics = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [point]}}]}]}
        ]
    }
    for path, document in (("logs", logs), ("metrics", metrics)):
        answer = requests.post(f"{backend.http_endpoint}/v1/{path}", json=document, timeout=5)
        assert answer.status_code == 200, answer.text
    ((_, _, record),) = backend.log_records()
    ((_, name, data_point),) = backend.data_points()
    assert (record.trace_id, record.span_id, record.body.string_value) == (TRACE_ID, SPAN_ID, "hi")
    assert (name, data_point.as_int, data_point.exemplars[0].trace_id) == ("m", 5, TRACE_ID)


def test_undecodable_requests_are_refused_recorded_and_leave_the_fault_script_alone(
    backend: OtlpBackend,
) -> None:
    backend.script(Fault.unavailable())
    assert http_post(backend, b"\x0a\xff\xff", content_type="application/x-protobuf").status_code == 400
    assert http_post(backend, b"x", content_type="application/x-protobuf", encoding="br").status_code == 415
    assert http_post(backend, b"{}", content_type="text/plain").status_code == 415
    bad_json = http_post(
        backend,
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
        content_type="application/json",
    )
    assert bad_json.status_code == 400 and "message" in bad_json.json()
    assert grpc_error(backend, b"\x0a\xff\xff").code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [r.outcome for r in backend.requests] == ["invalid"] * 5
    assert [r.status for r in backend.requests] == ["400", "415", "415", "400", "INVALID_ARGUMENT"]
    assert backend.pending_faults == 1, "only decodable requests consume scripted faults"


# -- faults as a client sees them ----------------------------------------------------------------------


def test_grpc_client_sees_the_code_message_and_retry_info_of_a_fault(backend: OtlpBackend) -> None:
    backend.script(Fault(grpc_code=grpc.StatusCode.UNAVAILABLE, retry_info_delay=1.5, message="busy"))
    error = grpc_error(backend, trace_request().SerializeToString())
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, "busy")
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 1_500_000_000
    assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info
    assert backend.accepted_items("traces") == 0, "faulted data is not accepted"
    assert (backend.requests[0].outcome, backend.requests[0].status) == ("error", "UNAVAILABLE")


def test_http_client_sees_503_with_retry_after_and_a_status_body(backend: OtlpBackend) -> None:
    backend.script(Fault(http_status=503, retry_after="7", message="overloaded"))
    answer = http_post(backend, trace_request().SerializeToString(), content_type="application/x-protobuf")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "7")
    status = status_pb2.Status.FromString(answer.content)
    assert status.message == "overloaded" and status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert backend.requests[0].status == "503" and backend.accepted_items("traces") == 0


def test_one_fault_reads_the_same_on_both_transports(backend: OtlpBackend) -> None:
    backend.script(
        Fault(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED), Fault(http_status=503, retry_after="2")
    )
    answer = http_post(backend, trace_request().SerializeToString(), content_type="application/x-protobuf")
    assert answer.status_code == 429
    error = grpc_error(backend, trace_request().SerializeToString())
    info = error_details_pb2.RetryInfo.FromString(dict(error.trailing_metadata())["google.rpc.retryinfo-bin"])
    assert error.code() == grpc.StatusCode.UNAVAILABLE and info.retry_delay.seconds == 2


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporter_backs_off_as_told_and_then_delivers_once(
    backend: OtlpBackend, transport: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.script(Fault.unavailable(retry_after=0.05), Fault.throttled(retry_after=0.07))
    endpoint = backend.grpc_endpoint if transport == "grpc" else backend.http_endpoint
    span_exporter, _, _ = sdk_samples.exporters(transport, endpoint)
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("opentelemetry.exporter")]:
        # The SDK drops a log line repeating the last one's template within 20 s; here each one counts.
        monkeypatch.setattr(logging.getLogger(name), "filters", [])
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        assert span_exporter.export(sdk_samples.make_spans(3, RESOURCE)) == SpanExportResult.SUCCESS
    span_exporter.shutdown()
    # The SDK logs each wait it chose: the hints, not its own backoff (about 1 s, then 2 s).
    waits = re.findall(r"retrying in ([\d.]+)s", caplog.text)
    assert waits == ["0.05", "0.07"], caplog.text
    assert [r.outcome for r in backend.requests] == ["error", "error", "accepted"]
    assert len(backend.spans()) == 3


def test_sdk_exporter_gives_up_on_a_backend_that_stays_unavailable(backend: OtlpBackend) -> None:
    backend.default_fault = Fault.unavailable(retry_after=0.05)
    span_exporter, _, _ = sdk_samples.exporters("grpc", backend.grpc_endpoint)  # gives up after 6 attempts
    assert span_exporter.export(sdk_samples.make_spans(1, RESOURCE)) == SpanExportResult.FAILURE
    span_exporter.shutdown()
    assert len(backend.requests) >= 2 and {r.status for r in backend.requests} == {"UNAVAILABLE"}
    backend.default_fault = None
    assert grpc_export(backend, trace_request().SerializeToString())[1].code() == grpc.StatusCode.OK


def test_partial_success_is_answered_and_its_data_kept(backend: OtlpBackend) -> None:
    backend.script(Fault(partial_rejected=1, message="one span too old"), Fault(partial_rejected=2))
    response, _ = grpc_export(backend, trace_request(3).SerializeToString())
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(response).partial_success
    assert (partial.rejected_spans, partial.error_message) == (1, "one span too old")
    answer = requests.post(f"{backend.http_endpoint}/v1/traces", json={"resourceSpans": []}, timeout=5)
    assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedSpans"] in (2, "2")
    assert [r.outcome for r in backend.requests] == ["partial_rejected", "partial_rejected"]
    assert backend.accepted_items("traces") == 3


async def test_drop_connection_breaks_the_grpc_connection_and_the_next_call_reconnects(
    backend: OtlpBackend,
) -> None:
    backend.script(Fault(drop_connection=True))
    async with grpc.aio.insecure_channel(backend.grpc_endpoint) as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(trace_request().SerializeToString(), timeout=5)
        # A transport failure, not a status the server answered.
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert re.search("Socket closed|Connection reset|Stream removed", caught.value.details() or "")
        await channel_let_go_of_its_connection(channel)
        await export(trace_request().SerializeToString(), timeout=5, wait_for_ready=True)
    assert [r.outcome for r in backend.requests] == ["dropped", "accepted"]
    assert backend.requests[0].status is None


async def channel_let_go_of_its_connection(channel: grpc.aio.Channel) -> None:
    """Wait until `channel` is no longer READY on the connection that broke.

    grpc fails the calls of a broken connection at once, but when a write was in progress it closes the
    connection itself only once that write ends ("Delayed close due to in-progress write"): meanwhile the
    channel still reports READY and a new call goes onto the dying connection and fails UNAVAILABLE too
    (a real client retries it). Once the channel has left READY, the next call connects anew.
    """
    state = channel.get_state()
    while state == grpc.ChannelConnectivity.READY:
        await asyncio.wait_for(channel.wait_for_state_change(state), timeout=10)
        state = channel.get_state()


def test_drop_connection_closes_the_http_connection_without_an_answer(backend: OtlpBackend) -> None:
    backend.script(Fault(drop_connection=True))
    with pytest.raises(requests.ConnectionError):
        http_post(backend, trace_request().SerializeToString(), content_type="application/x-protobuf")
    assert [r.outcome for r in backend.requests] == ["dropped"]
    assert backend.accepted_items("traces") == 0


async def test_delay_makes_an_impatient_grpc_client_time_out(backend: OtlpBackend) -> None:
    backend.script(Fault(delay=30))
    async with grpc.aio.insecure_channel(backend.grpc_endpoint) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(TRACE_EXPORT)(trace_request().SerializeToString(), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await backend.wait_for_requests_async(1, timeout=5)
    assert backend.requests[0].outcome == "client_gone" and backend.accepted_items("traces") == 0


async def test_delay_makes_an_impatient_http_client_time_out_and_a_patient_one_succeed(
    backend: OtlpBackend,
) -> None:
    backend.script(Fault(delay=30), Fault(delay=0.05))
    url = f"{backend.http_endpoint}/v1/traces"
    body = trace_request().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=0.3))
        started = time.monotonic()
        async with session.post(url, data=body, headers=headers) as answer:
            assert answer.status == 200 and time.monotonic() - started >= 0.05
    await backend.wait_for_requests_async(2, timeout=5)
    assert sorted(r.outcome for r in backend.requests) == ["accepted", "client_gone"]


# -- script order, waiting, lifecycle ------------------------------------------------------------------


def test_script_runs_in_order_per_signal_then_falls_back_to_default(backend: OtlpBackend) -> None:
    backend.script(Fault.invalid(), signal="logs")
    backend.script(Fault.unavailable(), Fault.throttled())
    backend.default_fault = Fault(http_status=500)
    _, metric_exporter, log_exporter = sdk_samples.exporters("http", backend.http_endpoint)
    log_exporter.export(sdk_samples.make_logs(1, RESOURCE))
    grpc_error(backend, trace_request().SerializeToString())
    grpc_error(backend, trace_request().SerializeToString())
    grpc_error(backend, trace_request().SerializeToString())
    assert [r.status for r in backend.requests] == ["400", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL"]
    backend.clear_faults()
    assert metric_exporter.export(sdk_samples.make_metrics(RESOURCE)) == MetricExportResult.SUCCESS
    assert backend.accepted_items("metrics") == 3 and backend.accepted("logs") == []


def test_wait_for_items_names_what_did_arrive_when_it_times_out(backend: OtlpBackend) -> None:
    grpc_export(backend, trace_request(1).SerializeToString())
    backend.wait_for_items("traces", 1)
    with pytest.raises(AssertionError, match=r"5 accepted traces items.*traces=1.*traces/grpc:accepted x1"):
        backend.wait_for_items("traces", 5, timeout=0.2)


async def test_async_wait_lets_the_callers_loop_keep_sending(backend: OtlpBackend) -> None:
    waiting = asyncio.create_task(backend.wait_for_items_async("traces", 4, timeout=5))
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            body = trace_request(2).SerializeToString()
            url = f"{backend.http_endpoint}/v1/traces"
            async with session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as r:
                assert r.status == 200
    await waiting
    assert backend.accepted_items("traces") == 4
    backend.reset()
    assert backend.requests == [] and backend.spans() == []


async def test_stop_is_bounded_even_with_requests_held_by_a_delay() -> None:
    backend = OtlpBackend().start()
    backend.default_fault = Fault(delay=60)
    body = trace_request().SerializeToString()
    async with aiohttp.ClientSession() as session:
        url = f"{backend.http_endpoint}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        pending = asyncio.ensure_future(session.post(url, data=body, headers=headers))
        async with grpc.aio.insecure_channel(backend.grpc_endpoint) as channel:
            call = channel.unary_unary(TRACE_EXPORT)(body, timeout=30)
            await backend.wait_for_arrivals_async(2, timeout=5)
            # Bounded: stop() does not wait out the held requests' 60 s (it would time out here first).
            await asyncio.wait_for(asyncio.to_thread(backend.stop), timeout=30)
            with pytest.raises(grpc.aio.AioRpcError):
                await call
        with pytest.raises(aiohttp.ClientError):
            await pending
    assert {r.outcome for r in backend.requests} == {"stopped"}
    backend.stop()  # idempotent


def test_a_backend_that_keeps_no_bodies_still_counts_and_waits() -> None:
    with OtlpBackend(keep_bodies=False) as backend:
        grpc_export(backend, trace_request(7).SerializeToString())
        backend.wait_for_items("traces", 7, timeout=5)
        assert backend.requests[0].body == b"" and backend.requests[0].wire_size > 0
