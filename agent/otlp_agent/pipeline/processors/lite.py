"""Lite schemas: the OTLP messages with only the fields processors read declared, everything else unknown.

A resource entry (ResourceSpans / ResourceLogs / ResourceMetrics) that a processor must look inside is
parsed with upb (C speed) against these schemas instead of the full OTLP ones. What is not declared —
timestamps, ids a rule does not read, event names, links, exemplars, bucket counts... — is kept by upb as
unknown fields: raw bytes, never turned into Python objects, written back unchanged on serialization.
Attributes are declared as `repeated bytes`: each KeyValue stays its serialized bytes, and processors read
and rewrite them on the wire (see `kv`), so no KeyValue/AnyValue object is ever built.

Message-typed fields a processor reads (a log body, an instrumentation scope, a span's status) are declared
as messages, never as bytes: a message field sent twice is a merge in protobuf, and a bytes field would keep
only the last. Metric data keeps its oneof, so "last one wins" holds as with the full schema. Serialization
writes declared fields first and unknown fields after: the field order changes, the message does not
(the property tests parse both and compare).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from otlp_agent.api.spec import Signal

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {"bytes": _F.TYPE_BYTES, "string": _F.TYPE_STRING, "int32": _F.TYPE_INT32}

# message name -> [(field name, number, type or message name, repeated, oneof)]
_Field = tuple[str, int, str, bool, str | None]
_MESSAGES: dict[str, list[_Field]] = {
    "Opaque": [],
    "Scope": [("scope", 1, "Opaque", False, None)],
    # traces
    "TraceEntry": [("scopes", 2, "SpanScope", True, None)],
    "SpanScope": [("scope", 1, "Opaque", False, None), ("items", 2, "Span", True, None)],
    "Span": [
        ("trace_id", 1, "bytes", False, None),
        ("trace_state", 3, "string", False, None),
        ("name", 5, "string", False, None),
        ("kind", 6, "int32", False, None),
        ("attributes", 9, "bytes", True, None),
        ("events", 11, "Event", True, None),
        ("status", 15, "Status", False, None),
    ],
    "Event": [("attributes", 3, "bytes", True, None)],
    "Status": [("code", 3, "int32", False, None)],
    # logs
    "LogEntry": [("scopes", 2, "LogScope", True, None)],
    "LogScope": [("scope", 1, "Opaque", False, None), ("items", 2, "Log", True, None)],
    "Log": [
        ("severity_number", 2, "int32", False, None),
        ("body", 5, "Opaque", False, None),
        ("attributes", 6, "bytes", True, None),
        ("trace_id", 9, "bytes", False, None),
    ],
    # metrics
    "MetricEntry": [("scopes", 2, "MetricScope", True, None)],
    "MetricScope": [("scope", 1, "Opaque", False, None), ("items", 2, "Metric", True, None)],
    "Metric": [
        ("name", 1, "string", False, None),
        ("gauge", 5, "NumberPoints", False, "data"),
        ("sum", 7, "NumberPoints", False, "data"),
        ("histogram", 9, "HistogramPoints", False, "data"),
        ("exponential_histogram", 10, "ExponentialPoints", False, "data"),
        ("summary", 11, "SummaryPoints", False, "data"),
    ],
    "NumberPoints": [("data_points", 1, "NumberPoint", True, None)],
    "HistogramPoints": [("data_points", 1, "HistogramPoint", True, None)],
    "ExponentialPoints": [("data_points", 1, "ExponentialPoint", True, None)],
    "SummaryPoints": [("data_points", 1, "SummaryPoint", True, None)],
    "NumberPoint": [("attributes", 7, "bytes", True, None)],
    "HistogramPoint": [("attributes", 9, "bytes", True, None)],
    "ExponentialPoint": [("attributes", 1, "bytes", True, None)],
    "SummaryPoint": [("attributes", 7, "bytes", True, None)],
}
#: The metric data fields (oneof `data`), in the order of the full schema.
METRIC_DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
_ENTRIES = {Signal.traces: "TraceEntry", Signal.logs: "LogEntry", Signal.metrics: "MetricEntry"}


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="otlp_agent_lite.proto", package="lite", syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        oneofs: list[str] = []
        for field_name, number, kind, repeated, oneof in fields:
            field = message.field.add(
                name=field_name, number=number, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            )
            if kind in _TYPES:
                field.type = _TYPES[kind]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".lite.{kind}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    message.oneof_decl.add(name=oneof)
                field.oneof_index = oneofs.index(oneof)
    return file


def _classes() -> dict[Signal, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {
        signal: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"lite.{name}"))
        for signal, name in _ENTRIES.items()
    }


#: The lite resource-entry message class per signal.
ENTRY = _classes()


def parse_entry(signal: Signal, data: bytes) -> Any:
    """A resource entry's value (the bytes inside ResourceSpans/Logs/Metrics) as a lite message."""
    return ENTRY[signal].FromString(data)
