"""OTLP wire handling for the test backend: signals, decompression, OTLP/JSON, item counts, answers.

Everything here is pure (bytes in, bytes or messages out) so both transports share it. OTLP/JSON differs
from protobuf's canonical JSON mapping in one way that matters: trace and span ids are hex strings, not
base64, so they are rewritten before `google.protobuf.json_format` parses the document.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from collections.abc import Iterator
from typing import Any

import zstandard
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


class BadRequest(Exception):
    """The request cannot be decoded: answered with HTTP 400/415 or gRPC INVALID_ARGUMENT."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclasses.dataclass(frozen=True)
class Signal:
    """One OTLP signal: its name, service, URL path, messages and partial-success field."""

    name: str
    service: str
    path: str
    request: type[Message]
    response: type[Message]
    partial: type[Message]
    rejected_field: str


SIGNALS: dict[str, Signal] = {
    "traces": Signal(
        "traces",
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "/v1/traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2.ExportTracePartialSuccess,
        "rejected_spans",
    ),
    "metrics": Signal(
        "metrics",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
        "/v1/metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2.ExportMetricsPartialSuccess,
        "rejected_data_points",
    ),
    "logs": Signal(
        "logs",
        "opentelemetry.proto.collector.logs.v1.LogsService",
        "/v1/logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2.ExportLogsPartialSuccess,
        "rejected_log_records",
    ),
}


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """Undo an HTTP Content-Encoding (identity, gzip, deflate, zstd), refusing output over `limit` bytes."""
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return data
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(zlib.decompressobj(16 + zlib.MAX_WBITS), data, limit)
        if encoding == "deflate":
            return _inflate_deflate(data, limit)
        if encoding == "zstd":
            return _unzstd(data, limit)
    except (zlib.error, zstandard.ZstdError) as error:
        raise BadRequest(f"cannot decode {encoding} body: {error}") from error
    raise BadRequest(f"unsupported Content-Encoding {encoding!r}", http_status=415)


def _inflate(decoder: Any, data: bytes, limit: int) -> bytes:
    out = decoder.decompress(data, limit + 1)
    if len(out) > limit:
        raise BadRequest(f"decoded body exceeds {limit} bytes", http_status=413)
    if not decoder.eof:
        raise BadRequest("truncated compressed body")
    return bytes(out)


def _inflate_deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" is zlib-wrapped, but some clients send a raw deflate stream; accept both.
    try:
        return _inflate(zlib.decompressobj(zlib.MAX_WBITS), data, limit)
    except zlib.error:
        return _inflate(zlib.decompressobj(-zlib.MAX_WBITS), data, limit)


def _unzstd(data: bytes, limit: int) -> bytes:
    # Streaming so frames without a declared content size work, and the limit holds per chunk.
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    out = bytearray()
    while chunk := reader.read(1 << 16):
        out += chunk
        if len(out) > limit:
            raise BadRequest(f"decoded body exceeds {limit} bytes", http_status=413)
    return bytes(out)


def sniff_grpc_compression(message: bytes) -> str:
    """Which compression a raw gRPC message uses. A valid OTLP request never starts with these magics."""
    if message[:2] == b"\x1f\x8b":
        return "gzip"
    if len(message) > 1 and message[0] == 0x78 and (message[0] * 256 + message[1]) % 31 == 0:
        return "deflate"
    return "identity"


def json_to_protobuf(signal: Signal, document: bytes) -> bytes:
    """Convert an OTLP/JSON request body to the equivalent protobuf bytes (hex ids, unknown keys ignored)."""
    try:
        tree = json.loads(document)
        tree = _hex_ids_to_base64(tree)
        message = json_format.ParseDict(tree, signal.request(), ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as error:
        raise BadRequest(f"invalid OTLP/JSON {signal.name} request: {error}") from error
    return bytes(message.SerializeToString())


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: _convert_entry(key, value) for key, value in node.items()}


def _convert_entry(key: str, value: Any) -> Any:
    if key in _ID_KEYS and isinstance(value, str):
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    return _hex_ids_to_base64(value)


def parse(signal: Signal, body: bytes) -> Message:
    """Parse protobuf bytes into the signal's Export*ServiceRequest."""
    message = signal.request()
    try:
        message.ParseFromString(body)
    except DecodeError as error:
        raise BadRequest(f"invalid protobuf {signal.name} request: {error}") from error
    return message


def count_items(signal: Signal, message: Any) -> int:
    """Spans, metric data points or log records in a parsed request."""
    if signal.name == "traces":
        return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    if signal.name == "logs":
        return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)
    return sum(len(_points(metric)) for _, _, metric in iter_metrics(message))


def _points(metric: Any) -> Any:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def iter_metrics(message: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(resource, scope, metric) for every metric in an ExportMetricsServiceRequest."""
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                yield rm.resource, sm.scope, metric


def iter_points(message: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(resource, metric, data point) for every data point in an ExportMetricsServiceRequest."""
    for resource, _, metric in iter_metrics(message):
        for point in _points(metric):
            yield resource, metric, point


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value (str, bool, int, float, bytes, list, dict or None)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    """OTLP KeyValue attributes as a dict of plain Python values."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def encode(message: Message, content_type: str) -> bytes:
    """Serialize an answer in the request's content type (OTLP/JSON or protobuf)."""
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return bytes(message.SerializeToString())


def success(signal: Signal, rejected: int | None = None, message: str = "") -> Message:
    """An Export*ServiceResponse, with partial_success when `rejected` is given."""
    response = signal.response()
    if rejected is not None:
        partial = signal.partial(**{signal.rejected_field: rejected, "error_message": message})
        response.partial_success.CopyFrom(partial)
    return response


def error_status(code: int, message: str, retry_delay: float | None) -> status_pb2.Status:
    """A google.rpc.Status with a RetryInfo detail when a retry delay is given."""
    status = status_pb2.Status(code=code or code_pb2.UNKNOWN, message=message)
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(round(retry_delay * 1e9))
        status.details.add().Pack(info)
    return status


def retry_info(status: status_pb2.Status) -> error_details_pb2.RetryInfo | None:
    """The RetryInfo detail of a google.rpc.Status, if it has one."""
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info
    return None
