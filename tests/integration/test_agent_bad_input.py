"""Bad input gets a precise status, is counted, and never stops the agent serving everyone else."""

from __future__ import annotations

import asyncio
import gzip
import os
import zlib
from typing import Any

import aiohttp
import grpc
import grpc.aio
import orjson
import pytest
import zstandard
from google.rpc import status_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend, sdk_samples
from tests.support.raw_http import post
from tests.support.trace_requests import TRACE_METHOD, valid_request

LIMIT = 64 * 1024


def spec_for(backend: OtlpBackend) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"grpc": {"maxMessageSize": LIMIT}, "http": {"maxBodySize": LIMIT}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


async def grpc_export(
    agent: RunningAgent, body: bytes, compression: grpc.Compression | None = None
) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
        try:
            await channel.unary_unary(TRACE_METHOD)(body, timeout=5, compression=compression)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def bomb(encoding: str) -> bytes:
    zeros = b"\0" * (32 * 1024 * 1024)
    if encoding == "gzip":
        return gzip.compress(zeros, 9)
    if encoding == "deflate":
        return zlib.compress(zeros, 9)
    return bytes(zstandard.ZstdCompressor(level=19).compress(zeros))


HTTP_CASES = [
    pytest.param(os.urandom(2048), "application/x-protobuf", {}, 400, id="random-bytes"),
    pytest.param(valid_request()[:-7], "application/x-protobuf", {}, 400, id="truncated-protobuf"),
    pytest.param(b'{"resourceSpans": [', "application/json", {}, 400, id="invalid-json"),
    pytest.param(b'{"resourceSpans": 7}', "application/json", {}, 400, id="json-wrong-type"),
    pytest.param(valid_request(), "text/plain", {}, 415, id="wrong-content-type"),
    pytest.param(
        valid_request(), "application/x-protobuf", {"Content-Encoding": "br"}, 415, id="unknown-encoding"
    ),
    pytest.param(
        b"\x1f\x8b\x08garbage", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, id="bad-gzip"
    ),
    pytest.param(bomb("gzip"), "application/x-protobuf", {"Content-Encoding": "gzip"}, 413, id="gzip-bomb"),
    pytest.param(
        bomb("deflate"), "application/x-protobuf", {"Content-Encoding": "deflate"}, 413, id="deflate-bomb"
    ),
    pytest.param(bomb("zstd"), "application/x-protobuf", {"Content-Encoding": "zstd"}, 413, id="zstd-bomb"),
    pytest.param(valid_request(LIMIT // 40), "application/x-protobuf", {}, 413, id="oversized-body"),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "status"), HTTP_CASES)
async def test_bad_http_requests_get_a_precise_status_and_the_agent_keeps_serving(
    body: bytes, content_type: str, headers: dict[str, str], status: int
) -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            got, answer, _ = await post(agent, body, content_type, **headers)
            assert got == status
            if content_type == "application/json":
                assert orjson.loads(answer)["message"]
            elif got != 415:
                assert status_pb2.Status.FromString(answer).message, "the client is told what was wrong"
            assert (
                sum(
                    agent.metric(
                        "otlp_agent_refused_requests_total", signal="traces", transport="http", reason=reason
                    )
                    for reason in ("malformed", "too_large", "unsupported_media_type")
                )
                == 1
            )
            assert (await post(agent, valid_request()))[0] == 200
            await backend.wait_for_items_async("traces", 3)
        assert [name for _, _, span in backend.spans() for name in [span.name]] == ["ok-0", "ok-1", "ok-2"]


async def test_wrong_method_and_unknown_path_are_405_and_404() -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent, aiohttp.ClientSession() as session:
            async with session.get(f"{agent.http_endpoint}/v1/traces") as response:
                assert response.status == 405
            async with session.post(f"{agent.http_endpoint}/v1/spans", data=b"") as response:
                assert response.status == 404


async def test_bad_grpc_requests_get_invalid_argument_or_resource_exhausted() -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            assert await grpc_export(agent, os.urandom(4096)) == grpc.StatusCode.INVALID_ARGUMENT
            assert await grpc_export(agent, valid_request()[:-5]) == grpc.StatusCode.INVALID_ARGUMENT
            assert await grpc_export(agent, valid_request(LIMIT // 40)) == grpc.StatusCode.RESOURCE_EXHAUSTED
            # A gzip-compressed message that inflates past the limit is refused too.
            assert (
                await grpc_export(agent, valid_request(LIMIT // 40), grpc.Compression.Gzip)
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            assert await grpc_export(agent, valid_request(), grpc.Compression.Gzip) == grpc.StatusCode.OK
            await backend.wait_for_items_async("traces", 3)
            malformed = agent.metric(
                "otlp_agent_refused_requests_total", signal="traces", transport="grpc", reason="malformed"
            )
            assert malformed == 2


async def test_json_items_with_bad_ids_are_rejected_alone_with_partial_success() -> None:
    good = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "good"}
    bad = {"traceId": "not-hex", "spanId": "0102030405060708", "name": "bad"}
    body = orjson.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": [good, bad, {**good, "name": "good2"}]}]}]}
    )
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            status, answer, headers = await post(agent, body, "application/json")
            assert status == 200
            assert headers["Content-Type"].startswith("application/json")
            partial = orjson.loads(answer)["partialSuccess"]
            assert partial["rejectedSpans"] == "1"
            assert "traceId" in partial["errorMessage"]
            await backend.wait_for_items_async("traces", 2)
        assert sorted(span.name for _, _, span in backend.spans()) == ["good", "good2"]


async def test_sdk_clients_keep_working_while_garbage_arrives() -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_for(backend)) as agent:
            for _ in range(20):
                assert (await post(agent, os.urandom(512)))[0] == 400
            span_exporter, _, _ = sdk_samples.exporters("http", agent.http_endpoint)
            spans = sdk_samples.make_spans(10, {"service.name": "ok"})
            assert (await asyncio.to_thread(span_exporter.export, spans)).name == "SUCCESS"
            await asyncio.to_thread(span_exporter.shutdown)
            await backend.wait_for_items_async("traces", 10)
