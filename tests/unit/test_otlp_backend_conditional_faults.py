"""The test backend's conditional faults, as raw clients meet them: a backend that cannot read some
encodings (HTTP 415, gRPC UNIMPLEMENTED naming the algorithm) and one with a size limit (HTTP 413, gRPC
RESOURCE_EXHAUSTED with a size message and no RetryInfo) refuse only the requests they describe; and every
recorded request says which client connection it came on."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import requests
import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.otlp_backend import Fault, OtlpBackend

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as running:
        yield running


def body(spans: int) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(spans):
        scope.spans.add(name=f"span-{index:04d}", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    return bytes(request.SerializeToString())


def post(backend: OtlpBackend, data: bytes, encoding: str | None = None) -> requests.Response:
    headers = {
        "Content-Type": "application/x-protobuf",
        **({"Content-Encoding": encoding} if encoding else {}),
    }
    return requests.post(f"{backend.http_endpoint}/v1/traces", data=data, headers=headers, timeout=5)


def test_a_backend_refusing_an_encoding_answers_415_to_it_and_takes_the_others(backend: OtlpBackend) -> None:
    backend.default_fault = Fault.refusing_encodings("zstd")
    data = body(3)
    assert post(backend, zstandard.ZstdCompressor().compress(data), "zstd").status_code == 415
    assert post(backend, data).status_code == 200
    assert [(r.content_encoding, r.outcome) for r in backend.requests] == [
        ("zstd", "error"),
        ("identity", "accepted"),
    ]


def test_a_grpc_backend_refusing_gzip_says_unimplemented_and_names_the_algorithm(
    backend: OtlpBackend,
) -> None:
    backend.default_fault = Fault.refusing_encodings("gzip")
    with grpc.insecure_channel(backend.grpc_endpoint) as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        with pytest.raises(grpc.RpcError) as refused:
            export(body(3), timeout=5, compression=grpc.Compression.Gzip)
        export(body(3), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Compression algorithm 'gzip'" in refused.value.details()
    assert backend.accepted_items("traces") == 3


def test_a_size_limit_refuses_larger_bodies_after_decompression_with_413(backend: OtlpBackend) -> None:
    data = body(100)
    backend.default_fault = Fault.size_limit(len(data) - 1)
    refused = post(backend, zstandard.ZstdCompressor().compress(data), "zstd")
    assert refused.status_code == 413
    assert post(backend, body(50)).status_code == 200
    assert backend.accepted_items("traces") == 50


def test_a_grpc_size_limit_answers_resource_exhausted_without_retry_info(backend: OtlpBackend) -> None:
    backend.default_fault = Fault.size_limit(1000)
    with grpc.insecure_channel(backend.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(TRACE_EXPORT)(body(100), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the size limit of 1000 bytes" in refused.value.details()
    trailers = dict(refused.value.trailing_metadata() or ())
    assert "google.rpc.retryinfo-bin" not in trailers


def test_requests_record_their_client_connection(backend: OtlpBackend) -> None:
    with requests.Session() as one, requests.Session() as other:
        for session in (one, one, other):
            response = session.post(
                f"{backend.http_endpoint}/v1/traces",
                data=body(1),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=5,
            )
            assert response.status_code == 200
    first, second, third = (r.peer for r in backend.requests)
    assert first == second != third
