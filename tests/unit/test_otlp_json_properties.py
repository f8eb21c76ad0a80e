"""OTLP/JSON against the protobuf reference (`google.protobuf.json_format`), on random requests of every
signal that use every field: where the two mappings agree (everything but hex ids, which json_format
knows as base64), the agent's converter must build exactly the message json_format builds, whatever the
spelling (camelCase or snake_case per key, 64-bit integers as strings or numbers, enums as integers,
nulls, unknown fields). A bad item must cost that item alone."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import orjson
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import otlp_json
from otlp_agent.otlp.signals import SIGNALS

from tests.support.otlp_json_reference import HEX_KEYS, reference, wire_bytes

F = FieldDescriptor
HEX_IDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
VALUE_MESSAGES = {"opentelemetry.proto.common.v1.ArrayValue", "opentelemetry.proto.common.v1.KeyValueList"}
INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_ENUM: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1), F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}  # fmt: skip
INT64_TYPES = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        edges = st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2])
        return st.one_of(edges, st.integers(low, high))
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        floats = st.floats(allow_nan=False, width=64 if kind == F.TYPE_DOUBLE else 32)
        return st.one_of(floats, st.just(math.nan), st.sampled_from([-0.0, math.inf, -math.inf]))
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_STRING:
        return st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
    if field.name in HEX_IDS:
        return st.one_of(st.just(b""), st.binary(min_size=HEX_IDS[field.name], max_size=HEX_IDS[field.name]))
    return st.binary(max_size=12)


@st.composite
def message(draw: Any, descriptor: Descriptor, depth: int = 0) -> Any:
    """A message of `descriptor` with a random subset of its fields set (one member per oneof)."""
    kwargs: dict[str, Any] = {}
    chosen_oneofs: set[str] = set()
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and (oneof.name in chosen_oneofs or not draw(st.booleans())):
            continue
        if draw(st.integers(0, 2)) and depth > 1:
            continue  # below the top levels, a field is set one time in three: requests stay small
        child = field.message_type
        if child is not None and child.full_name in VALUE_MESSAGES and depth >= 3:
            continue
        values = message(child, depth + 1) if child is not None else scalar(field)
        kwargs[field.name] = draw(st.lists(values, max_size=2)) if field.is_repeated else draw(values)
        if oneof is not None:
            chosen_oneofs.add(oneof.name)
    return message_factory.GetMessageClass(descriptor)(**kwargs)


def requests(signal: Signal) -> st.SearchStrategy[Any]:
    return message(SIGNALS[signal].request_type.DESCRIPTOR)


@st.composite
def respelled(draw: Any, document: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """The same OTLP/JSON object in another spelling: snake_case keys, numbers for 64-bit integers written
    as strings, nulls for absent fields, unknown fields."""
    fields = {field.json_name: field for field in descriptor.fields}
    out: dict[str, Any] = {}
    for key, value in document.items():
        field = fields[key]
        name = field.name if draw(st.booleans()) else key
        child = field.message_type
        if child is not None:
            items = value if field.is_repeated else [value]
            spelled = [draw(respelled(item, child)) for item in items]
            out[name] = spelled if field.is_repeated else spelled[0]
        elif field.type in INT64_TYPES and not field.is_repeated and draw(st.booleans()):
            out[name] = int(value)
        else:
            out[name] = value
    if draw(st.integers(0, 4)) == 0:
        out["unknownField"] = draw(st.sampled_from([None, 1, "x", [1, {"a": 2}], {"nested": {"b": []}}]))
    absent = [field.json_name for field in descriptor.fields if field.json_name not in document]
    if absent and draw(st.integers(0, 4)) == 0:
        out[draw(st.sampled_from(absent))] = None  # null means unset, for any field
    return out


def ours(signal: Signal, document: Any) -> otlp_json.Converted:
    return otlp_json.parse_request(signal, json.dumps(document).encode())


@PROPERTY_SETTINGS
@given(st.data())
def test_any_request_survives_protobuf_to_json_and_back(data: st.DataObject) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    original = data.draw(requests(signal))
    converted = otlp_json.parse_request(signal, otlp_json.to_json(original))
    assert (converted.rejected, converted.error) == (0, "")
    assert wire_bytes(converted.message) == wire_bytes(original)


@PROPERTY_SETTINGS
@given(st.data())
def test_any_spelling_builds_what_json_format_builds(data: st.DataObject) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    original = data.draw(requests(signal))
    descriptor = SIGNALS[signal].request_type.DESCRIPTOR
    document = data.draw(respelled(orjson.loads(otlp_json.to_json(original)), descriptor))
    converted = ours(signal, document)
    assert converted.rejected == 0
    assert wire_bytes(converted.message) == reference(signal, document) == wire_bytes(original)


@PROPERTY_SETTINGS
@given(st.data())
def test_what_json_format_prints_is_read_back_once_ids_are_hex(data: st.DataObject) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    original = data.draw(requests(signal))
    printed = json_format.MessageToDict(
        original,
        use_integers_for_enums=True,  # OTLP/JSON enums are integers
        preserving_proto_field_name=data.draw(st.booleans()),
    )
    converted = ours(signal, hex_ids(printed))
    assert wire_bytes(converted.message) == wire_bytes(original)


def hex_ids(document: Any) -> Any:
    if isinstance(document, list):
        return [hex_ids(item) for item in document]
    if not isinstance(document, dict):
        return document
    return {
        key: base64.b64decode(value).hex() if key in HEX_KEYS else hex_ids(value)
        for key, value in document.items()
    }


BAD_VALUES = st.sampled_from([{"x": 1}, [1], "not a number", 1.5, True, "ZZ", 2**65, -(2**65)])
# signal -> (resource list key, scope list key, item list key, whether an item counts 1 or its data points)
LAYOUT = {
    Signal.traces: ("resourceSpans", "scopeSpans", "spans", True),
    Signal.logs: ("resourceLogs", "scopeLogs", "logRecords", True),
    Signal.metrics: ("resourceMetrics", "scopeMetrics", "metrics", False),
}


# Drawn requests without items, and bad values json_format takes (1.5 for a double), are skipped: on a
# loaded machine that can trip hypothesis' filter health check although every run still tests 100 cases.
@settings(PROPERTY_SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_a_bad_value_in_one_item_costs_that_item_where_json_format_refuses_the_request(
    data: st.DataObject,
) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    document = orjson.loads(otlp_json.to_json(data.draw(requests(signal))))
    resources, scopes, name, counts_one = LAYOUT[signal]
    lists = [scope[name] for r in document.get(resources, []) for scope in r.get(scopes, []) if name in scope]
    candidates = [(items, index, key) for items in lists for index, item in enumerate(items) for key in item]
    assume(candidates)
    items, index, key = data.draw(st.sampled_from(candidates))
    items[index] = {**items[index], key: data.draw(BAD_VALUES)}
    assume(not accepted_by_json_format(signal, document))  # 1.5 is no bad value for a double
    converted = ours(signal, document)
    assert converted.rejected == (1 if counts_one else points(items[index]))
    assert f"[{index}].{key}" in converted.error
    del items[index]
    assert wire_bytes(converted.message) == reference(signal, document)


def accepted_by_json_format(signal: Signal, document: Any) -> bool:
    try:
        reference(signal, document)
    except json_format.ParseError:
        return False
    return True


def points(metric: dict[str, Any]) -> int:
    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
        if isinstance(metric.get(kind), dict):
            return len(metric[kind].get("dataPoints", []))
    return 1
