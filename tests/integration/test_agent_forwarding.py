"""The agent forwards what the official OpenTelemetry SDK exporters send, intact and exactly once,
over every supported receive protocol and every export protocol x compression."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest

from tests.support.agent_runner import agent_running
from tests.support.otlp_backend import OtlpBackend, sdk_samples
from tests.support.sdk_forwarding import RESOURCE, assert_spans_intact, exporter_to, send_all_signals
from tests.support.waiting import eventually

EXPORTS = [
    ("grpc", "none"),
    ("grpc", "gzip"),
    ("grpc", "deflate"),
    ("http/protobuf", "none"),
    ("http/protobuf", "gzip"),
    ("http/protobuf", "deflate"),
    ("http/protobuf", "zstd"),
    ("http/json", "gzip"),
]


def fast_batches(*exporters: dict[str, Any]) -> dict[str, Any]:
    return {"processors": {"batch": {"timeout": "20ms"}}, "exporters": list(exporters)}


@pytest.mark.parametrize("receive", ["grpc", "http"])
@pytest.mark.parametrize(("protocol", "compression"), EXPORTS)
async def test_every_item_arrives_once_and_intact(receive: str, protocol: str, compression: str) -> None:
    with OtlpBackend() as backend:
        async with agent_running(fast_batches(exporter_to(backend, protocol, compression))) as agent:
            endpoint = agent.grpc_endpoint if receive == "grpc" else agent.http_endpoint
            spans, _, records = await send_all_signals(receive, endpoint)
            await backend.wait_for_items_async("traces", 40)
            await backend.wait_for_items_async("metrics", 3)
            await backend.wait_for_items_async("logs", 25)
        assert_spans_intact(backend, spans)
        assert sorted(r.body.string_value for _, _, r in backend.log_records()) == sorted(
            r.log_record.body for r in records
        )
        assert {name for _, name, _ in backend.data_points()} == {"requests", "latency"}
        assert all(request.headers.get("x-tenant") == "shop" for request in backend.requests)
        release = importlib.metadata.version("otlp-operator")
        assert all(r.headers["user-agent"].startswith(f"otlp-agent/{release}") for r in backend.requests)
        wire_encodings = {request.content_encoding for request in backend.requests}
        assert wire_encodings == {"identity" if compression == "none" else compression}


async def test_fan_out_delivers_everything_to_every_exporter() -> None:
    with OtlpBackend() as first, OtlpBackend() as second:
        spec = fast_batches(
            exporter_to(first, "grpc", "gzip", "first"),
            exporter_to(second, "http/protobuf", "zstd", "second"),
        )
        async with agent_running(spec) as agent:
            spans, _, _ = await send_all_signals("grpc", agent.grpc_endpoint)
            await first.wait_for_items_async("traces", 40)
            await second.wait_for_items_async("traces", 40)
            await eventually(
                lambda: agent.metric("otelcol_exporter_sent_spans_total", exporter="second") == 40,
                what="the second exporter to count 40 exported spans",
            )
        assert_spans_intact(first, spans)
        assert_spans_intact(second, spans)


async def test_an_exporter_only_gets_the_signals_it_accepts() -> None:
    with OtlpBackend() as traces_only:
        exporter = {**exporter_to(traces_only, "http/protobuf", "gzip"), "signals": ["traces"]}
        async with agent_running(fast_batches(exporter)) as agent:
            await send_all_signals("http", agent.http_endpoint)
            await traces_only.wait_for_items_async("traces", 40)
            await agent.agent.pipeline.flush()
        assert {request.signal for request in traces_only.requests} == {"traces"}


async def test_small_requests_are_batched_into_fewer_exports() -> None:
    with OtlpBackend() as backend:
        spec = {
            "processors": {"batch": {"maxItems": 100, "timeout": "60s"}},  # only full batches go out
            "exporters": [exporter_to(backend, "grpc", "gzip")],
        }
        async with agent_running(spec) as agent:
            span_exporter, _, _ = sdk_samples.exporters("grpc", agent.grpc_endpoint)
            for _ in range(10):
                assert (
                    await asyncio.to_thread(span_exporter.export, sdk_samples.make_spans(20, RESOURCE))
                ).name == "SUCCESS"
            await asyncio.to_thread(span_exporter.shutdown)
            await backend.wait_for_items_async("traces", 200)
        assert len(backend.requests) == 2, "200 spans in batches of 100"
        assert [
            sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans)
            for m in backend.accepted("traces")
        ] == [100, 100]


async def test_a_request_larger_than_the_batch_is_split() -> None:
    with OtlpBackend() as backend:
        spec = {
            "processors": {"batch": {"maxItems": 16, "timeout": "20ms"}},
            "exporters": [exporter_to(backend, "http/protobuf", "zstd")],
        }
        async with agent_running(spec) as agent:
            spans, _, _ = await send_all_signals("http", agent.http_endpoint)
            await backend.wait_for_items_async("traces", 40)
        assert max(r.items for r in backend.requests if r.signal == "traces") <= 16
        assert_spans_intact(backend, spans)


async def test_shutdown_flushes_a_partial_batch() -> None:
    with OtlpBackend() as backend:
        spec = {
            "processors": {"batch": {"timeout": "1m"}},
            "exporters": [exporter_to(backend, "grpc", "none")],
        }
        async with agent_running(spec) as agent:
            await send_all_signals("grpc", agent.grpc_endpoint)
            assert backend.accepted_items("traces") == 0, "the batch waits for its timeout"
        assert backend.accepted_items("traces") == 40
        assert backend.accepted_items("logs") == 25
