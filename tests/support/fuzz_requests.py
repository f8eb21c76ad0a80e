"""Hypothesis strategies for hostile OTLP requests, and the clients that throw them at an agent.

A `FuzzRequest` is one request to one receiver: OTLP/HTTP (through aiohttp), OTLP/gRPC (through grpc.aio,
raw bytes), or raw bytes on a TCP connection to either port. Hypothesis chooses the structure (kind of body,
mutation, content type, encoding, auth, sizes, nesting depth); large byte blobs come from a PRNG seeded by
hypothesis, so examples stay small for hypothesis and reproducible from the seed.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import random
import zlib
from typing import Any

import orjson
import zstandard
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import otlp_json, wire

LIMIT = 256 * 1024  # the fuzzed agent's maxMessageSize / maxBodySize
TOKEN = "fuzz-token-0123456789"
SERVICES = {
    Signal.traces: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.metrics: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.logs: "opentelemetry.proto.collector.logs.v1.LogsService",
}
CONTENT_TYPES = [
    "application/x-protobuf",
    "application/json",
    "application/json; charset=utf-8",
    "application/x-protobuf; charset=binary",
    "APPLICATION/JSON",
    "text/plain",
    "application/grpc",
    "multipart/form-data; boundary=x",
    "",
    ";;;",
    "application/\u00e9",
]
ENCODINGS = ["", "identity", "gzip", "deflate", "zstd", "br", "gzip, gzip", "GZIP", "x-\u00ff"]
_ZEROS = b"\0" * (16 * 1024 * 1024)
BOMBS = {
    "gzip": gzip.compress(_ZEROS, 9),
    "deflate": zlib.compress(_ZEROS, 9),
    "zstd": zstandard.ZstdCompressor(level=19).compress(_ZEROS),
}


@dataclasses.dataclass(frozen=True)
class FuzzRequest:
    """One generated request. `valid`: well-formed and authorized, so it must be accepted."""

    transport: str  # "http" | "grpc" | "raw-http" | "raw-grpc"
    path: str  # HTTP path or gRPC method
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "POST"
    compression: str = "none"  # gRPC compression
    valid: bool = False
    kind: str = ""


# -- payloads -----------------------------------------------------------------------------------------


_ld = wire.length_delimited  # short: the payloads below nest it deeply


def valid_message(signal: Signal, rng: random.Random, items: int, attributes: int) -> Any:
    """A well-formed Export*ServiceRequest with `items` items of `attributes` attributes each."""

    def fill(attrs: Any) -> None:
        for index in range(attributes):
            kv = attrs.add(key=f"k{index}")
            choice = rng.randrange(4)
            if choice == 0:
                kv.value.string_value = "".join(
                    chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(8))
                )
            elif choice == 1:
                kv.value.int_value = rng.randrange(-(2**63), 2**63)
            elif choice == 2:
                kv.value.double_value = rng.random()
            else:
                kv.value.array_value.values.add().bool_value = True

    if signal == Signal.traces:
        request = trace_service_pb2.ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for index in range(items):
            span = scope.spans.add(name=f"fuzz-{index}", trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
            fill(span.attributes)
    elif signal == Signal.logs:
        request = logs_service_pb2.ExportLogsServiceRequest()
        scope = request.resource_logs.add().scope_logs.add()
        for index in range(items):
            record = scope.log_records.add(time_unix_nano=rng.randrange(2**63), severity_number=9)
            record.body.string_value = f"log {index}"
            fill(record.attributes)
    else:
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="fuzz.gauge")
        for _ in range(items):
            point = metric.gauge.data_points.add(as_double=rng.random(), time_unix_nano=rng.randrange(2**63))
            fill(point.attributes)
    return request


_ATTRIBUTES_FIELD = {Signal.traces: 9, Signal.logs: 6, Signal.metrics: 7}  # Span, LogRecord, NumberDataPoint


def one_item_with(signal: Signal, key_value: bytes, count: int = 1) -> bytes:
    """A request of one span / log record / data point carrying `count` copies of a KeyValue."""
    attributes = _ld(_ATTRIBUTES_FIELD[signal], key_value) * count
    if signal == Signal.traces:
        item = _ld(2, _ld(1, b"\x01" * 16) + _ld(2, b"\x02" * 8) + _ld(5, b"item") + attributes)
    elif signal == Signal.logs:
        item = _ld(2, attributes)
    else:
        item = _ld(2, _ld(1, b"m") + _ld(5, _ld(1, attributes)))  # Metric.gauge -> data_points
    return _ld(1, _ld(2, item))


def deeply_nested(signal: Signal, depth: int) -> bytes:
    """A request whose one attribute is an AnyValue nested `depth` arrays / kvlists deep (wire-built)."""
    value = _ld(1, b"leaf")  # AnyValue.string_value
    for level in range(depth):
        # odd levels: AnyValue.array_value -> ArrayValue.values; even: kvlist_value -> values -> KeyValue
        value = _ld(5, _ld(1, value)) if level % 2 else _ld(6, _ld(1, _ld(1, b"k") + _ld(2, value)))
    return one_item_with(signal, _ld(1, b"deep") + _ld(2, value))


def many_attributes(signal: Signal, count: int) -> bytes:
    """One item with `count` attributes (over the size limit from about 20,000)."""
    return one_item_with(signal, _ld(1, b"attr") + _ld(2, _ld(1, b"value")), count)


def deeply_nested_json(signal: Signal, depth: int) -> bytes:
    value = '{"stringValue":"leaf"}'
    for level in range(depth):
        value = (
            '{"arrayValue":{"values":[' + value + "]}}"
            if level % 2
            else '{"kvlistValue":{"values":[{"key":"k","value":' + value + "}]}}"
        )
    attribute = '{"key":"deep","value":' + value + "}"
    if signal == Signal.traces:
        item = (
            '{"traceId":"'
            + "01" * 16
            + '","spanId":"'
            + "02" * 8
            + '","name":"d","attributes":['
            + attribute
            + "]}"
        )
        return ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + item + "]}]}]}").encode()
    if signal == Signal.logs:
        return (
            '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[' + attribute + "]}]}]}]}"
        ).encode()
    point = '{"asDouble":1,"attributes":[' + attribute + "]}"
    return (
        '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":['
        + point
        + "]}}]}]}]}"
    ).encode()


def mutate(data: bytes, rng: random.Random, mutations: int) -> bytes:
    """Flip, insert, delete and duplicate bytes."""
    buffer = bytearray(data)
    for _ in range(mutations):
        choice = rng.randrange(4)
        position = rng.randrange(len(buffer) + 1)
        if choice == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buffer[position:position] = rng.randbytes(rng.randrange(1, 8))
        elif choice == 2:
            del buffer[position : position + rng.randrange(1, 8)]
        else:
            buffer[position:position] = buffer[max(0, position - 16) : position]
    return bytes(buffer)


JSON_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resourceLogs",
    "scopeLogs",
    "logRecords",
    "resourceMetrics",
    "scopeMetrics",
    "metrics",
    "attributes",
    "traceId",
    "spanId",
    "name",
    "value",
    "stringValue",
    "intValue",
    "kvlistValue",
    "arrayValue",
    "values",
    "gauge",
    "dataPoints",
    "asDouble",
    "timeUnixNano",
    "resource",
    "scope",
    "body",
    "severityNumber",
    "kind",
    "status",
    "events",
    "links",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=3)
    ),
    max_leaves=12,
)


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, 1)
    if encoding == "deflate":
        return zlib.compress(body, 1)
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(body)
    return body


# -- strategies ----------------------------------------------------------------------------------------


# Over-limit gRPC calls cost ~0.8 s each in grpc's client (flow control after the server's refusal), so the
# oversized kinds are drawn less often than the cheap ones.
PROTOBUF_KINDS = st.sampled_from(
    ["valid"] * 4
    + ["random", "small-random", "truncated", "mutated", "nested", "wrong-signal", "empty"] * 2
    + ["attrs", "big"]
)


@st.composite
def protobuf_body(draw: Any, signal: Signal) -> tuple[bytes, bool, str]:
    """(body, valid, kind) for a protobuf request of `signal`."""
    rng = random.Random(draw(_integers(0, 2**32)))
    kind = draw(PROTOBUF_KINDS)
    if kind == "random":
        return rng.randbytes(draw(_integers(1, 4096))), False, kind
    if kind == "small-random":
        return draw(_binary(max_size=48)), False, kind
    if kind == "nested":
        depth = draw(NESTING_DEPTHS)
        body = deeply_nested(signal, depth)
        return body, depth <= 30, kind  # upb parses up to 100 message levels deep, 3 per nesting here
    if kind == "attrs":  # huge attribute counts, near and over the size limit
        count = draw(_integers(1000, 30000))
        body = many_attributes(signal, count)
        return body, len(body) <= LIMIT, kind
    if kind == "big":
        return rng.randbytes(draw(_integers(LIMIT - 64, 2 * LIMIT))), False, kind
    if kind == "empty":
        return b"", True, kind  # an empty request is a valid request with no items
    other = draw(_sampled([s for s in Signal if s != signal]))
    message = valid_message(
        other if kind == "wrong-signal" else signal, rng, draw(_integers(1, 20)), draw(_integers(0, 6))
    )
    body = message.SerializeToString()
    if kind == "valid":
        return body, True, kind
    if kind == "truncated":
        return body[: rng.randrange(len(body))], False, kind
    if kind == "wrong-signal":
        return body, False, kind
    return mutate(body, rng, draw(_integers(1, 6))), False, kind


@st.composite
def json_body(draw: Any, signal: Signal) -> tuple[bytes, bool, str]:
    rng = random.Random(draw(_integers(0, 2**32)))
    kind = draw(_sampled(["valid", "valid", "wrong-types", "invalid", "truncated", "nested", "text"]))
    if kind == "wrong-types":
        top = {"traces": "resourceSpans", "logs": "resourceLogs", "metrics": "resourceMetrics"}[signal.value]
        return orjson.dumps({top: draw(json_values)}), False, kind
    if kind == "nested":
        return deeply_nested_json(signal, draw(_integers(1, 3000))), False, kind
    if kind == "text":
        return draw(_text(max_size=64)).encode("utf-8", "surrogatepass"), False, kind
    body = otlp_json.to_json(valid_message(signal, rng, draw(_integers(1, 10)), draw(_integers(0, 4))))
    if kind == "valid":
        return body, True, kind
    if kind == "truncated":
        return body[: rng.randrange(len(body))], False, kind
    return mutate(body, rng, draw(_integers(1, 4))), False, kind


RARELY = st.sampled_from([False] * 19 + [True])
auth_headers = st.sampled_from(
    [(("Authorization", f"Bearer {TOKEN}"),)] * 20
    + [(), (("Authorization", "Bearer wrong"),), (("Authorization", TOKEN),), (("Authorization", "Bearer "),)]
)


@st.composite
def http_request(draw: Any) -> FuzzRequest:
    signal = draw(_sampled(list(Signal)))
    content_type = draw(_sampled(CONTENT_TYPES[:4] * 4 + CONTENT_TYPES[4:]))
    as_json = content_type.lower().startswith("application/json")
    body, valid, kind = draw(_JSON_BODIES[signal] if as_json else _PROTOBUF_BODIES[signal])
    valid = valid and content_type in (
        "application/x-protobuf",
        "application/json",
        "application/json; charset=utf-8",
        "application/x-protobuf; charset=binary",
    )
    encoding = draw(_sampled(ENCODINGS[:5] * 3 + ENCODINGS[5:]))
    how = draw(_sampled(["matching", "matching", "undeclared-compression", "bomb"]))
    if how == "bomb" and encoding.lower() in BOMBS:
        body, valid, kind = BOMBS[encoding.lower()], False, f"bomb-{encoding}"
    elif encoding.lower() in ("gzip", "deflate", "zstd") and how != "undeclared-compression":
        body = compress(body, encoding.lower())
    elif how == "undeclared-compression":
        body = compress(body, draw(_sampled(["gzip", "deflate", "zstd"])))
        valid = False
    if encoding.lower() not in ("", "identity", "gzip", "deflate", "zstd"):
        valid = False
    auth = draw(auth_headers)
    valid = valid and bool(auth) and auth[0][1] == f"Bearer {TOKEN}"
    headers = (("Content-Type", content_type), *auth) + (
        (("Content-Encoding", encoding),) if encoding else ()
    )
    path, method = f"/v1/{signal.value}", "POST"
    if draw(RARELY):
        path, method = draw(
            st.sampled_from(
                [
                    (path, "GET"),
                    (path, "PUT"),
                    ("/v1/unknown", "POST"),
                    (path + "/x", "POST"),
                    ("/", "POST"),
                    (path, "DELETE"),
                ]
            )
        )
        valid = False
    return FuzzRequest("http", path, body, headers, method, valid=valid, kind=f"http-{kind}")


@st.composite
def grpc_request(draw: Any) -> FuzzRequest:
    signal = draw(_sampled(list(Signal)))
    body, valid, kind = draw(_PROTOBUF_BODIES[signal])
    auth = draw(auth_headers)
    valid = valid and bool(auth) and auth[0][1] == f"Bearer {TOKEN}"
    method = f"/{SERVICES[signal]}/Export"
    if draw(RARELY):
        method, valid = draw(_sampled(["/x.Y/Export", f"/{SERVICES[signal]}/Nope", "/"])), False
    extra = draw(EXTRA_METADATA)
    headers = tuple((key.lower(), value) for key, value in auth) + tuple(extra)
    compression = draw(_sampled(["none", "gzip", "deflate"]))
    return FuzzRequest(
        "grpc", method, body, headers, compression=compression, valid=valid, kind=f"grpc-{kind}"
    )


RAW_HTTP = [
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
    b"POST /v1/traces HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"\r\n",
    b"POST /v1/traces HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,  # a TLS ClientHello to a plaintext port
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0" * 9,
]


@st.composite
def raw_request(draw: Any) -> FuzzRequest:
    port = draw(_sampled(["raw-http", "raw-grpc"]))
    body = draw(RAW_BODIES)
    return FuzzRequest(port, "", body, kind=port)


# Strategies are built once: making them inside each draw costs hypothesis a validation every time.
_integers = functools.cache(st.integers)
_binary = functools.cache(st.binary)
_text = functools.cache(st.text)


def _sampled(values: Any) -> st.SearchStrategy[Any]:
    return _sampled_tuple(tuple(values))


_sampled_tuple = functools.cache(st.sampled_from)
NESTING_DEPTHS = st.integers(1, 3000) | st.integers(1, 40)
RAW_BODIES = st.sampled_from(RAW_HTTP) | st.binary(min_size=1, max_size=256)
EXTRA_METADATA = st.lists(
    st.tuples(st.sampled_from(("x-a", "x-b", "te", "user-agent")), st.text("abc =/", max_size=8)),
    max_size=2,
)


_PROTOBUF_BODIES = {signal: protobuf_body(signal) for signal in Signal}
_JSON_BODIES = {signal: json_body(signal) for signal in Signal}
requests = st.one_of(http_request(), http_request(), grpc_request(), grpc_request(), raw_request())
