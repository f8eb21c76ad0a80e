"""The benchmark sink counts spans exactly, from compressed bodies, without parsing them."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import aiohttp
import grpc
import pytest
import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench import payloads, sink, wire
from bench.counters import SinkCounters
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_span_count_matches_a_full_protobuf_parse():
    for seed, spans in ((1, 100), (2, 7), (3, 1)):
        body = payloads.build_request(seed, spans).SerializeToString()
        parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        expected = sum(len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)
        assert wire.count_spans(body) == expected == spans


def test_concatenated_requests_count_as_their_merge():
    bodies = payloads.build_bodies(count=3, spans=40)
    assert wire.count_spans(b"".join(bodies)) == 120


def test_several_resources_and_scopes_are_all_counted():
    request = payloads.build_request(5, 10)
    request.resource_spans.append(request.resource_spans[0])
    request.resource_spans[1].scope_spans.append(request.resource_spans[1].scope_spans[0])
    assert wire.count_spans(request.SerializeToString()) == 30


def test_empty_request_has_no_spans():
    assert wire.count_spans(b"") == 0


def test_truncated_body_is_rejected_not_miscounted():
    body = payloads.build_request(1, 20).SerializeToString()
    with pytest.raises(wire.WireError):
        wire.count_spans(body[:-3])


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
        ("", lambda data: data),
    ],
)
def test_decompress_undoes_each_encoding(encoding, compress):
    body = payloads.build_request(9, 30).SerializeToString()
    assert wire.decompress(compress(body), encoding) == body


def test_zstd_frames_without_a_content_size_decompress():
    body = payloads.build_request(4, 50).SerializeToString()
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    assert wire.decompress(compressor.compress(body), "zstd") == body


def test_throttle_spaces_requests_so_the_rate_holds():
    now = [100.0]
    throttle = sink.Throttle(1000.0, clock=lambda: now[0])
    assert throttle.reserve(500) == pytest.approx(0.5)
    assert throttle.reserve(500) == pytest.approx(1.0)  # queued behind the first
    now[0] = 105.0  # idle time is not banked as credit
    assert throttle.reserve(100) == pytest.approx(0.1)


def test_unthrottled_throttle_never_delays():
    assert sink.Throttle(None).reserve(10**6) == 0.0


async def test_http_sink_counts_spans_and_compressed_bytes():
    counters = SinkCounters.create()
    counting = sink.CountingSink(counters, sink.Throttle(None))
    counting.start()
    runner, port = await sink.start_http(counting)
    body = b"".join(payloads.build_bodies(count=2, spans=100))
    compressed = gzip.compress(body)
    try:
        async with aiohttp.ClientSession() as session:
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
            async with session.post(
                f"http://127.0.0.1:{port}/v1/traces", data=compressed, headers=headers
            ) as r:
                assert r.status == 200
        async with asyncio.timeout(10):
            await counting.pending.join()
    finally:
        await runner.cleanup()
        await counting.stop()
    snap = counters.snapshot()
    assert snap["requests"] == 1
    assert snap["spans"] == 200
    assert snap["wire_bytes"] == len(compressed)  # as received, not as decoded
    assert snap["decoded_bytes"] == len(body)


async def test_grpc_sink_counts_spans():
    counters = SinkCounters.create()
    counting = sink.CountingSink(counters, sink.Throttle(None))
    counting.start()
    server, port = await sink.start_grpc(counting)
    body = payloads.build_request(3, 64).SerializeToString()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await channel.unary_unary(TRACE_EXPORT)(body, timeout=5) == b""
        async with asyncio.timeout(10):
            await counting.pending.join()
    finally:
        await server.stop(grace=None)
        await counting.stop()
    assert counters.snapshot()["requests"] == 1
    assert counters.snapshot()["spans"] == 64
    assert counters.snapshot()["wire_bytes"] == len(body) + 5


async def test_throttled_sink_rejects_an_undecodable_body():
    counters = SinkCounters.create()
    counting = sink.CountingSink(counters, sink.Throttle(1e9))
    runner, port = await sink.start_http(counting)
    try:
        async with aiohttp.ClientSession() as session:
            headers = {"Content-Encoding": "gzip"}
            async with session.post(
                f"http://127.0.0.1:{port}/v1/traces", data=b"not gzip", headers=headers
            ) as r:
                assert r.status == 400
    finally:
        await runner.cleanup()
    assert counters.snapshot()["bad_requests"] == 1
    assert counters.snapshot()["spans"] == 0


async def test_throttled_sink_counts_a_request_only_when_it_releases_it():
    counters = SinkCounters.create()
    counting = sink.CountingSink(counters, sink.Throttle(100.0))  # 100 spans are held 1 s
    body = payloads.build_request(2, 100).SerializeToString()
    held = asyncio.create_task(counting.accept(body, "", len(body)))
    await eventually(lambda: counting.throttle.next_free > 0, timeout=5, what="the request took its slot")
    assert counters.snapshot()["spans"] == 0, "held until its slot comes"
    async with asyncio.timeout(5):
        assert await held is True
    assert counters.snapshot()["spans"] == 100
