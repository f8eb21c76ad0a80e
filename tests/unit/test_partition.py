"""Cutting requests by trace id or resource on the wire (load balancing): every item reaches exactly its
owner, in its own resource and scope, counted right, and nothing is cut when one owner has everything; and
the hash ring behind the owners: the same key always has the same owner, and a change of the address set
moves about 1/N of the keys, only those of the address that came or went."""

from __future__ import annotations

import collections
import os
import random
from typing import Any

import hypothesis
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.exporter.transport.hash_ring import Ring
from otlp_agent.otlp import partition

from tests.support.placed_requests import request, traces

ADDRESSES = [f"10.0.0.{n}:4317" for n in range(1, 4)]


def kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def placed(message: Any) -> list[tuple[str, str, str, str]]:
    """(resource attributes, resource schema, scope, span name) of every span, for comparing cuts."""
    found = []
    for resource in message.resource_spans:
        attrs = ",".join(f"{kv.key}={kv.value.string_value}" for kv in resource.resource.attributes)
        for scope in resource.scope_spans:
            found += [(attrs, resource.schema_url, scope.scope.name, span.name) for span in scope.spans]
    return found


def test_spans_go_to_the_owner_of_their_trace_in_their_own_resource_and_scope() -> None:
    ids = [os.urandom(16) for _ in range(40)]
    rng = random.Random(7)
    shape = [[[rng.choice(ids) for _ in range(30)] for _ in range(3)] for _ in range(4)]
    message = traces(shape)
    data = message.SerializeToString()
    ring = Ring(ADDRESSES)
    parts = partition.by_trace(Signal.traces, data, 360, ring.owner, lambda resource: 0)
    assert len(parts) == 3, "40 random traces land on all three addresses"
    everything = []
    for who, (body, items) in parts.items():
        part = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = [span for r in part.resource_spans for s in r.scope_spans for span in s.spans]
        assert {ring.owner(span.trace_id) for span in spans} == {who}
        assert items == len(spans)
        everything += placed(part)
    assert sorted(everything) == sorted(placed(message)), "every span once, in its resource and scope"


def test_a_request_of_one_owner_is_passed_on_as_it_is() -> None:
    data = traces([[[b"\x01" * 16] * 5, [b"\x01" * 16] * 3]]).SerializeToString()
    parts = partition.by_trace(Signal.traces, data, 8, lambda key: 2, lambda resource: 0)
    (only,) = parts.values()
    assert list(parts) == [2] and only[0] is data and only[1] == 8


def test_spans_without_a_trace_id_go_with_their_resource() -> None:
    message = traces([[[b"", os.urandom(16)]], [[b"short"]]])
    data = message.SerializeToString()
    resources = []

    def resource_owner(resource: bytes) -> int:
        resources.append(resource_pb2.Resource.FromString(resource).attributes[0].value.string_value)
        return 7

    parts = partition.by_trace(Signal.traces, data, 3, lambda key: 1, resource_owner)
    counts = {who: items for who, (_, items) in parts.items()}
    assert counts == {7: 2, 1: 1}
    assert resources == ["0", "1"], "each resource's owner is asked once, when first needed"


def test_spans_whose_trace_id_is_not_written_first_are_still_read() -> None:
    span = trace_pb2.Span(name="late", trace_id=b"\x05" * 16).SerializeToString()
    fields = (
        trace_pb2.Span(name="late").SerializeToString()
        + trace_pb2.Span(trace_id=b"\x05" * 16).SerializeToString()
    )
    assert fields != span and trace_pb2.Span.FromString(fields) == trace_pb2.Span.FromString(span)
    scope = b"\x12" + bytes([len(fields)]) + fields  # ScopeSpans.spans, the name before the trace id
    resource = b"\x12" + bytes([len(scope)]) + scope
    data = b"\x0a" + bytes([len(resource)]) + resource
    seen: list[bytes] = []
    parts = partition.by_trace(Signal.traces, data, 1, lambda key: seen.append(key) or 4, lambda r: 0)
    assert seen == [b"\x05" * 16] and list(parts) == [4]


def test_log_records_go_by_trace_id_and_without_one_by_resource() -> None:
    message = logs_service_pb2.ExportLogsServiceRequest()
    resource = message.resource_logs.add()
    resource.resource.attributes.append(kv("service.name", "api"))
    scope = resource.scope_logs.add()
    for n, trace_id in enumerate([b"\x01" * 16, b"", b"\x02" * 16, b"\x01" * 16]):
        scope.log_records.add(body=common_pb2.AnyValue(string_value=str(n)), trace_id=trace_id)
    owners = {b"\x01" * 16: 1, b"\x02" * 16: 2}
    parts = partition.by_trace(
        Signal.logs, message.SerializeToString(), 4, owners.__getitem__, lambda resource: 9
    )
    bodies = {
        who: [
            r.body.string_value
            for rl in logs_service_pb2.ExportLogsServiceRequest.FromString(body).resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
        ]
        for who, (body, _) in parts.items()
    }
    assert bodies == {1: ["0", "3"], 9: ["1"], 2: ["2"]}


def test_metrics_go_by_resource_and_count_their_data_points() -> None:
    data = request(Signal.metrics, [[2, 1], [3], [1, 1]]).SerializeToString()

    def owner(resource: bytes) -> int:
        return int(resource_pb2.Resource.FromString(resource).attributes[0].value.string_value) % 2

    parts = partition.by_trace(Signal.metrics, data, 8, lambda key: 0, owner)
    counts = {who: items for who, (_, items) in parts.items()}
    assert counts == {0: 5, 1: 3}
    for body, items in parts.values():
        parsed = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        points = sum(
            len(m.gauge.data_points)
            for r in parsed.resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
        )
        assert points == items


def test_a_resource_key_of_some_attributes_ignores_the_others() -> None:
    def resource(*pairs: tuple[str, str]) -> bytes:
        return resource_pb2.Resource(attributes=[kv(k, v) for k, v in pairs]).SerializeToString()

    a = resource(("service.name", "api"), ("host.name", "one"))
    b = resource(("host.name", "two"), ("service.name", "api"))
    c = resource(("service.name", "web"))
    key = partition.resource_key
    assert key(a, ("service.name",)) == key(b, ("service.name",)) != key(c, ("service.name",))
    assert key(a, ()) == a and key(a, ()) != key(b, ())


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    st.lists(
        st.lists(st.lists(st.integers(0, 9), max_size=12), min_size=1, max_size=3), min_size=1, max_size=4
    ),
    st.integers(1, 5),
)
def test_any_request_is_cut_into_parts_that_together_hold_every_span_once(
    shape: list[list[list[int]]], owners: int
) -> None:
    message = traces([[[bytes([t]) * 16 for t in scope] for scope in resource] for resource in shape])
    data = message.SerializeToString()
    items = sum(len(scope) for resource in shape for scope in resource)
    parts = partition.by_trace(Signal.traces, data, items, lambda key: key[0] % owners, lambda r: 0)
    joined = b"".join(body for body, _ in parts.values())
    assert sum(count for _, count in parts.values()) == items
    assert sorted(placed(trace_service_pb2.ExportTraceServiceRequest.FromString(joined))) == sorted(
        placed(message)
    )


def test_every_ring_sends_a_key_to_the_same_address() -> None:
    keys = [os.urandom(16) for _ in range(2000)]
    first, second = Ring(ADDRESSES), Ring(list(reversed(ADDRESSES)))
    assert [first.owner(k) for k in keys] == [second.owner(k) for k in keys]
    shares = collections.Counter(first.addresses[first.owner(k)] for k in keys)
    assert all(500 < share < 850 for share in shares.values()), shares


def test_a_fourth_address_takes_about_a_quarter_of_the_keys_from_the_other_three() -> None:
    keys = [os.urandom(16) for _ in range(20000)]
    three, four = Ring(ADDRESSES), Ring([*ADDRESSES, "10.0.0.4:4317"])
    moved = [k for k in keys if three.addresses[three.owner(k)] != four.addresses[four.owner(k)]]
    assert 0.2 < len(moved) / len(keys) < 0.3
    assert all(four.addresses[four.owner(k)] == "10.0.0.4:4317" for k in moved), "only to the newcomer"


def test_removing_an_address_moves_only_its_own_keys() -> None:
    keys = [os.urandom(16) for _ in range(5000)]
    three, two = Ring(ADDRESSES), Ring(ADDRESSES[:2])
    for key in keys:
        before = three.addresses[three.owner(key)]
        if before != ADDRESSES[2]:
            assert two.addresses[two.owner(key)] == before
