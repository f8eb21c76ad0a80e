"""OTLP/JSON attributes converted once and looked up after (`json_attributes`' cache) convert exactly as
they do the first time, whatever JSON types and shapes follow the ones cached: 1, 1.0 and true are equal
in Python but not in OTLP/JSON, and an attribute may lack its value, carry more members, or sit beside
one that does."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import json_attributes, otlp_json

from tests.support.otlp_json_reference import reference

SCALAR_VALUES = ["1", 1, True, False, 0, 1.0, -0.0, 0.0, "NaN", "true", None, [1], "2" * 300]
MEMBER_NAMES = ["stringValue", "intValue", "boolValue", "doubleValue", "string_value", "other"]
KEYS = st.sampled_from(["k", "", 1, None, ["k"]])
SCALARS = st.sampled_from(SCALAR_VALUES)
MEMBERS = st.sampled_from(MEMBER_NAMES)
#: Every one-member attribute of key "k": converted first, it leaves in the cache all that can be cached.
EVERY = [{"key": "k", "value": {member: value}} for member in MEMBER_NAMES for value in SCALAR_VALUES]


@st.composite
def attribute(draw: st.DrawFn) -> Any:
    """An attribute as a client may send it: usually {"key", "value": {one member}}, sometimes not."""
    shape = draw(st.integers(0, 9))
    value = {draw(MEMBERS): draw(SCALARS)}
    if shape == 0:
        value[draw(MEMBERS)] = draw(SCALARS)  # two members
    item: Any = {"key": draw(KEYS), "value": value}
    if shape == 1:
        del item["value"]
    elif shape == 2:
        item["keyStrindex"] = 3
    elif shape == 3:
        item["value"] = draw(SCALARS)  # not an object
    elif shape == 4:
        item = draw(SCALARS)  # not an object at all
    return item


def span_request(attributes: list[Any]) -> bytes:
    span = {"traceId": "01" * 16, "spanId": "02" * 8, "name": "s", "attributes": attributes}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def converted(body: bytes) -> tuple[bytes, int, str]:
    result = otlp_json.parse_request(Signal.traces, body)
    return result.payload, result.rejected, result.error


def span_attributes(payload: bytes) -> list[Any]:
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    return [
        kv for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans for kv in s.attributes
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(attribute(), min_size=1, max_size=6))
def test_an_attribute_converts_alike_whatever_was_converted_before(attributes: list[Any]) -> None:
    alone = []
    for item in attributes:  # each on its own, from an empty cache: what it converts to
        json_attributes._cache.clear()
        alone.append(converted(span_request([item])))
    json_attributes._cache.clear()
    for item in EVERY + attributes:  # each alone: a span with a bad attribute is rejected whole
        converted(span_request([item]))
    payload, rejected, _ = converted(span_request(attributes + attributes))
    if any(single[1] for single in alone):
        assert rejected == 1  # the span, rejected for the attribute that is wrong
    else:
        expected = [kv for single in alone for kv in span_attributes(single[0])]
        assert rejected == 0
        assert span_attributes(payload) == expected + expected


def test_cached_string_attributes_equal_what_json_format_builds() -> None:
    attributes = [
        {"key": "http.route", "value": {"stringValue": "/a"}},
        {"key": "http.status_code", "value": {"intValue": "200"}},
        {"key": "flag", "value": {"boolValue": True}},
    ]
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "s", "attributes": attributes}]}]}]}
    body = json.dumps(document).encode()
    first, second = converted(body), converted(body)
    assert first == second == (reference(Signal.traces, document), 0, "")


def test_a_number_or_boolean_equal_to_one_converted_before_is_not_taken_for_it() -> None:
    for member, good, bad in (("intValue", "1", True), ("intValue", 1, True), ("boolValue", True, 1)):
        assert converted(span_request([{"key": "n", "value": {member: good}}]))[1] == 0
        assert converted(span_request([{"key": "n", "value": {member: bad}}]))[1] == 1  # wrong JSON type
    zero, negative = (
        converted(span_request([{"key": "d", "value": {"doubleValue": v}}]))[0] for v in (0.0, -0.0)
    )
    assert zero != negative  # -0.0 keeps its sign bit
