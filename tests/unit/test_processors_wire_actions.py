"""Property: attribute actions done on the wire (`wire_actions`: by occurrence, directly when `wire_proof`
proves it, else by a walk through the items) equal a protobuf parse-modify-serialize, on requests encoded
the way no SDK encodes them but protobuf allows: KeyValues with their fields reordered, repeated or
spelled with overlong varints, keys' bytes inside names, values, nested maps, events, links, scope and
resource attributes, long values with two-byte lengths, unknown fields, fields in any order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api import rules
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline.processors import chain, wire_actions, wire_proof
from otlp_agent.telemetry.metrics import AgentMetrics

from bench import payloads
from tests.support import processor_check as reference_check

KEYS = ("user.email", "card", "k8s.namespace.name", "n")
OTHER_KEYS = ("http.route", "x", "")


def varint(value: int, overlong: bool = False) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    if overlong:
        return bytes(out) + bytes((value | 0x80, 0x00))
    return bytes(out) + bytes((value,))


def field(number: int, payload: bytes, overlong: bool = False) -> bytes:
    """A length-delimited field; `overlong` spells its tag and length with a needless extra byte."""
    return varint(number << 3 | 2, overlong) + varint(len(payload), overlong) + payload


@st.composite
def any_value(draw: st.DrawFn) -> bytes:
    """A serialized AnyValue: strings (some holding a key's bytes or a whole fake attribute field, some
    long), ints, bools, bytes, or a map holding KeyValues with the keys."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        text = draw(st.sampled_from(("ann@example.com", "4111 1111", "shop", "", "x@y.org 12")))
        return field(1, text.encode())
    if kind == 1:
        key = draw(st.sampled_from(KEYS)).encode()
        fake = field(9, field(1, key) + field(2, field(1, b"a@b")))  # an attribute field, inside a string
        return field(1, draw(st.sampled_from((key, b"pre " + key, fake, fake + fake))))
    if kind == 2:
        return field(1, b"ann@example.com " * draw(st.integers(8, 20)))  # a two-byte length
    if kind == 3:
        return varint(3 << 3) + varint(draw(st.integers(0, 2**40)))
    if kind == 4:
        return field(7, draw(st.binary(max_size=6)))
    nested = field(1, field(1, draw(st.sampled_from(KEYS)).encode()) + field(2, field(1, b"a@b.c")))
    return field(6, nested)  # a kvlist whose KeyValue has an action's key


@st.composite
def keyvalue(draw: st.DrawFn) -> bytes:
    """A serialized KeyValue in one of the forms protobuf parsers accept (the last key field wins)."""
    key = draw(st.sampled_from(KEYS + OTHER_KEYS)).encode()
    value = draw(any_value())
    form = draw(st.integers(0, 6))
    if form == 0:
        return field(1, key) + field(2, value)
    if form == 1:
        return field(2, value) + field(1, key)  # value first
    if form == 2:
        return field(1, draw(st.sampled_from(KEYS)).encode()) + field(2, value) + field(1, key)  # key twice
    if form == 3:
        return field(1, key, overlong=True) + field(2, value)
    if form == 4:
        return field(1, key) + field(2, value, overlong=True)
    if form == 5:
        return field(1, key) + field(2, value) + varint(7 << 3) + b"\x01"  # an unknown field
    return field(1, key)  # no value


@st.composite
def span(draw: st.DrawFn) -> bytes:
    attributes = [
        field(9, kv, draw(st.booleans()) and draw(st.booleans()))
        for kv in draw(st.lists(keyvalue(), max_size=5))
    ]
    events = [
        field(11, field(2, b"e") + b"".join(field(3, kv) for kv in draw(st.lists(keyvalue(), max_size=3))))
        for _ in range(draw(st.integers(0, 2)))
    ]
    links = [field(13, field(1, b"\x01" * 16) + field(4, draw(keyvalue())))] if draw(st.booleans()) else []
    name = draw(st.sampled_from((b"GET /a", b"card", field(9, field(1, b"card")))))
    fields = [
        field(1, draw(st.binary(min_size=16, max_size=16))),
        field(2, b"\x02" * 8),
        field(5, name),
        *attributes,
        *events,
        *links,
        field(15, varint(3 << 3) + b"\x02"),
        b"\x85\x01\x01\x00\x00\x00",  # flags: field 16, fixed32, a two-byte tag
    ]
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))
    return b"".join(fields)


@st.composite
def trace_request(draw: st.DrawFn) -> bytes:
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        resource = b"".join(field(1, kv) for kv in draw(st.lists(keyvalue(), max_size=2)))
        scopes = []
        for _ in range(draw(st.integers(0, 2))):
            scope = field(
                1, field(1, b"lib") + b"".join(field(3, kv) for kv in draw(st.lists(keyvalue(), max_size=1)))
            )
            scopes.append(field(2, scope + b"".join(field(2, s) for s in draw(st.lists(span(), max_size=4)))))
        entries.append(field(1, field(1, resource) + b"".join(scopes)))
    return b"".join(entries)


@st.composite
def log_request(draw: st.DrawFn) -> bytes:
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        scopes = []
        for _ in range(draw(st.integers(0, 2))):
            records = []
            for _ in range(draw(st.integers(0, 4))):
                attributes = [field(6, kv) for kv in draw(st.lists(keyvalue(), max_size=5))]
                body = field(5, draw(any_value()))
                record = [varint(2 << 3) + b"\x09", body, *attributes, field(9, b"\x03" * 16)]
                if draw(st.booleans()):
                    record = draw(st.permutations(record))
                records.append(field(2, b"".join(record)))
            scopes.append(field(2, field(1, field(1, b"lib")) + b"".join(records)))
        entries.append(field(1, b"".join(scopes)))
    return b"".join(entries)


ACTIONS = [
    {"key": "user.email", "action": "redact", "regex": "[a-z]+@", "replacement": "#"},
    {"key": "card", "action": "hash"},
    {"key": "k8s.namespace.name", "action": "delete"},
    {"key": "n", "action": "update", "value": "v"},
    {"key": "card", "action": "redact", "regex": "[0-9]"},
    {"key": "user.email", "action": "delete"},
]
wire_action_lists = st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4, unique_by=str)

SETTINGS = settings(max_examples=300, deadline=None)


def wire_program(signal: Signal, actions: list[dict[str, Any]]) -> wire_actions.WireActions | None:
    p = rules.validate_spec(
        {"exporters": [{"name": "x", "debug": {}}], "processors": {"attributes": {"actions": actions}}}
    )
    built = chain.build(p.processors, AgentMetrics())
    assert built is not None
    return built._chains[signal].wire


@SETTINGS
@given(trace_request(), wire_action_lists)
def test_span_and_event_attributes_rewritten_on_the_wire_equal_a_parse_modify_serialize(
    data: bytes, actions: list[dict[str, Any]]
) -> None:
    wire.validate_and_count(Signal.traces, data)  # what a receiver would have checked
    reference_check.check(Signal.traces, data, {"attributes": {"actions": actions}})


@SETTINGS
@given(log_request(), wire_action_lists)
def test_log_record_attributes_rewritten_on_the_wire_equal_a_parse_modify_serialize(
    data: bytes, actions: list[dict[str, Any]]
) -> None:
    wire.validate_and_count(Signal.logs, data)
    reference_check.check(Signal.logs, data, {"attributes": {"actions": actions}})


CLEAN_KEYS = ("user.email", "card", "k8s.namespace.name", "http.route", "other.key")
CLEAN_ACTIONS = [a for a in ACTIONS if a["key"] != "n"] + [
    {"key": "http.route", "action": "update", "value": "v"}
]


def clean_value() -> st.SearchStrategy[common_pb2.AnyValue]:
    texts = ("ann@example.com", "4111 1111", "", "x@y.org " * 30)  # the last needs a two-byte length
    return st.one_of(
        st.sampled_from(texts).map(lambda t: common_pb2.AnyValue(string_value=t)),
        st.integers(0, 2**40).map(lambda i: common_pb2.AnyValue(int_value=i)),
        st.just(common_pb2.AnyValue(bool_value=True)),
    )


def clean_attributes(keys: tuple[str, ...] = CLEAN_KEYS) -> st.SearchStrategy[list[common_pb2.KeyValue]]:
    kv = st.builds(lambda k, v: common_pb2.KeyValue(key=k, value=v), st.sampled_from(keys), clean_value())
    return st.lists(kv, max_size=5)


@st.composite
def sdk_traces(draw: st.DrawFn) -> bytes:
    """Requests as SDKs write them, the keys only in item attributes (mostly): what `wire_proof` proves."""
    event_keys = ("e.key",) if draw(st.integers(0, 4)) else CLEAN_KEYS
    name = "card" if not draw(st.integers(0, 9)) else "GET /a"
    span = st.builds(
        lambda attributes, events: trace_pb2.Span(
            trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=name, attributes=attributes, events=events
        ),
        clean_attributes(),
        st.lists(
            st.builds(lambda a: trace_pb2.Span.Event(name="e", attributes=a), clean_attributes(event_keys)),
            max_size=2,
        ),
    )
    scope = st.builds(lambda spans: trace_pb2.ScopeSpans(spans=spans), st.lists(span, max_size=4))
    entry = st.builds(
        lambda attributes, scopes: trace_pb2.ResourceSpans(
            resource=resource_pb2.Resource(attributes=attributes), scope_spans=scopes
        ),
        clean_attributes(),
        st.lists(scope, max_size=2),
    )
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=draw(st.lists(entry, min_size=1, max_size=2))
    )
    return request.SerializeToString()


@st.composite
def sdk_logs(draw: st.DrawFn) -> bytes:
    record = st.builds(
        lambda attributes: logs_pb2.LogRecord(
            body=common_pb2.AnyValue(string_value="hello"), attributes=attributes
        ),
        clean_attributes(),
    )
    scope = st.builds(lambda records: logs_pb2.ScopeLogs(log_records=records), st.lists(record, max_size=4))
    entry = st.builds(lambda scopes: logs_pb2.ResourceLogs(scope_logs=scopes), st.lists(scope, max_size=2))
    request = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=draw(st.lists(entry, min_size=1, max_size=2))
    )
    return request.SerializeToString()


clean_action_lists = st.lists(st.sampled_from(CLEAN_ACTIONS), min_size=1, max_size=4, unique_by=str)


@SETTINGS
@given(sdk_traces(), clean_action_lists)
def test_span_attributes_rewritten_where_found_equal_a_parse_modify_serialize(
    data: bytes, actions: list[dict[str, Any]]
) -> None:
    reference_check.check(Signal.traces, data, {"attributes": {"actions": actions}})


@SETTINGS
@given(sdk_logs(), clean_action_lists)
def test_log_attributes_rewritten_where_found_equal_a_parse_modify_serialize(
    data: bytes, actions: list[dict[str, Any]]
) -> None:
    reference_check.check(Signal.logs, data, {"attributes": {"actions": actions}})


def test_the_action_lists_drawn_here_are_done_on_the_wire() -> None:
    for actions in ([a] for a in ACTIONS + CLEAN_ACTIONS):
        try:
            program = wire_program(Signal.traces, actions)
        except ValueError:
            continue
        assert program is not None


def entries(data: bytes) -> list[memoryview]:
    return [memoryview(data)[v:e] for _, v, e in wire.resource_entries(data)]


def seen(entry: memoryview, *keys: bytes) -> dict[bytes, int]:
    scopes = [bytes(entry[v:e]) for n, _, v, e in wire.fields(entry) if n == 2]
    return {key: sum(scope.count(key) for scope in scopes) for key in keys}


def sdk_request(name: str = "GET /a", event_key: str | None = None) -> bytes:
    kv = common_pb2.KeyValue(key="card", value=common_pb2.AnyValue(string_value="4111"))
    events = (
        [trace_pb2.Span.Event(name="e", attributes=[common_pb2.KeyValue(key=event_key)])] if event_key else []
    )
    spans = [trace_pb2.Span(trace_id=b"\x01" * 16, name=name, attributes=[kv], events=events)]
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def test_the_proof_holds_for_what_sdks_send() -> None:
    (entry,) = entries(payloads.build_bodies(1)[0])
    assert wire_proof.proves(Signal.traces, entry, seen(entry, b"client.address", b"user_agent.original"))
    (entry,) = entries(sdk_request())
    assert wire_proof.proves(Signal.traces, entry, seen(entry, b"card"))


@pytest.mark.parametrize(
    "request_bytes",
    [sdk_request(name="card"), sdk_request(event_key="card"), sdk_request(name="\x12\x06\x0a\x04card")],
    ids=["in a span name", "in an event attribute", "a fake key field in a span name"],
)
def test_the_proof_fails_when_a_key_occurs_outside_the_item_attributes_keys(request_bytes: bytes) -> None:
    (entry,) = entries(request_bytes)
    assert not wire_proof.proves(Signal.traces, entry, seen(entry, b"card"))


def test_keys_whose_occurrences_can_overlap_are_never_proven() -> None:
    assert wire_proof.provable(b"user.email")
    assert not wire_proof.provable(b"abab")  # a border: "ab"
    assert not wire_proof.provable(b"k" * 128)
