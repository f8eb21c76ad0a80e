"""Requests kept as bytes: counted and validated without per-item objects, and split at resource, scope and
item boundaries so that no item is lost, duplicated or moved to another resource or scope.

The `request` builder here is also used by the batcher and OTLP/JSON tests.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator, Sequence
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.otlp.signals import SIGNALS

Shape = Sequence[Sequence[int]]  # items per scope, per resource


def attribute(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def _gauge(name: str, points: int) -> metrics_pb2.Metric:
    return metrics_pb2.Metric(
        name=name,
        gauge=metrics_pb2.Gauge(
            data_points=[metrics_pb2.NumberDataPoint(as_double=i) for i in range(points)]
        ),
    )


def item(signal: Signal, name: str, padding: int = 0) -> Any:
    """One span, log record or single-point gauge, identified by `name` (plus optional bulk)."""
    extra = [attribute("padding", "x" * padding)] if padding else []
    if signal == Signal.traces:
        return trace_pb2.Span(name=name, trace_id=bytes(range(16)), span_id=bytes(range(8)), attributes=extra)
    if signal == Signal.logs:
        return logs_pb2.LogRecord(body=common_pb2.AnyValue(string_value=name), attributes=extra)
    metric = _gauge(name, 1)
    metric.gauge.data_points[0].attributes.extend(extra)
    return metric


def item_name(signal: Signal, value: Any) -> str:
    return str(value.body.string_value if signal == Signal.logs else value.name)


def request(signal: Signal, shape: Shape, padding: int = 0) -> Any:
    """A request whose resources carry attribute r=<index> and schema URL, scopes are named s<r>.<s>, and
    items are named i<r>.<s>.<n>, so every item's rightful place can be checked after a split."""
    message = SIGNALS[signal].request_type()
    for r, scopes in enumerate(shape):
        resource = getattr(message, _resources_field(signal)).add(schema_url=f"https://schema/{r}")
        resource.resource.attributes.append(attribute("r", str(r)))
        for s, count in enumerate(scopes):
            scope = getattr(resource, _scopes_field(signal)).add(schema_url=f"https://scope-schema/{r}.{s}")
            scope.scope.name = f"s{r}.{s}"
            scope.scope.attributes.append(attribute("scope.r", str(r)))
            getattr(scope, _items_field(signal)).extend(
                item(signal, f"i{r}.{s}.{n}", padding) for n in range(count)
            )
    return message


def _resources_field(signal: Signal) -> str:
    return {
        Signal.traces: "resource_spans",
        Signal.metrics: "resource_metrics",
        Signal.logs: "resource_logs",
    }[signal]


def _scopes_field(signal: Signal) -> str:
    return {Signal.traces: "scope_spans", Signal.metrics: "scope_metrics", Signal.logs: "scope_logs"}[signal]


def _items_field(signal: Signal) -> str:
    return {Signal.traces: "spans", Signal.metrics: "metrics", Signal.logs: "log_records"}[signal]


def placed_items(signal: Signal, message: Any) -> Iterator[tuple[str, str, str, str, str]]:
    """(item name, resource attr r, resource schema URL, scope name, scope schema URL) for every item."""
    for resource in getattr(message, _resources_field(signal)):
        [r] = [kv.value.string_value for kv in resource.resource.attributes if kv.key == "r"]
        for scope in getattr(resource, _scopes_field(signal)):
            for value in getattr(scope, _items_field(signal)):
                yield item_name(signal, value), r, resource.schema_url, scope.scope.name, scope.schema_url


def assert_rightly_placed(signal: Signal, message: Any) -> None:
    for name, r, resource_schema, scope_name, scope_schema in placed_items(signal, message):
        rr, ss, _ = name[1:].split(".")
        assert (r, resource_schema) == (rr, f"https://schema/{rr}"), name
        assert (scope_name, scope_schema) == (f"s{rr}.{ss}", f"https://scope-schema/{rr}.{ss}"), name


def serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


# --- validate_and_count ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
def test_items_are_counted_across_resources_and_scopes(signal: Signal) -> None:
    data = serialize(request(signal, [[3, 0, 2], [], [5]]))
    assert wire.validate_and_count(signal, data) == 10


@pytest.mark.parametrize("signal", list(Signal))
def test_an_empty_request_has_no_items(signal: Signal) -> None:
    assert wire.validate_and_count(signal, b"") == 0


def all_metric_kinds() -> metrics_pb2.MetricsData:
    number = metrics_pb2.NumberDataPoint
    return [
        metrics_pb2.Metric(
            name="g", gauge=metrics_pb2.Gauge(data_points=[number(as_int=1), number(as_double=2)])
        ),
        metrics_pb2.Metric(
            name="s",
            sum=metrics_pb2.Sum(data_points=[number(as_int=i) for i in range(3)], is_monotonic=True),
        ),
        metrics_pb2.Metric(
            name="h",
            histogram=metrics_pb2.Histogram(
                data_points=[
                    metrics_pb2.HistogramDataPoint(count=4, bucket_counts=[1, 3], explicit_bounds=[1.0])
                ]
            ),
        ),
        metrics_pb2.Metric(
            name="e",
            exponential_histogram=metrics_pb2.ExponentialHistogram(
                data_points=[metrics_pb2.ExponentialHistogramDataPoint(count=1, scale=2)] * 4
            ),
        ),
        metrics_pb2.Metric(
            name="q",
            summary=metrics_pb2.Summary(data_points=[metrics_pb2.SummaryDataPoint(count=1, sum=2.0)] * 5),
        ),
        metrics_pb2.Metric(name="empty"),
    ]


def metrics_request(metrics: list[metrics_pb2.Metric]) -> Any:
    message = SIGNALS[Signal.metrics].request_type()
    message.resource_metrics.add().scope_metrics.add().metrics.extend(metrics)
    return message


def test_metrics_count_data_points_of_every_kind() -> None:
    data = serialize(metrics_request(all_metric_kinds()))
    assert wire.validate_and_count(Signal.metrics, data) == 2 + 3 + 1 + 4 + 5


@pytest.mark.parametrize("signal", list(Signal))
def test_random_bytes_are_malformed(signal: Signal) -> None:
    garbage = random.Random(3).randbytes(512)
    with pytest.raises(wire.MalformedPayload, match=f"invalid {signal.value} protobuf"):
        wire.validate_and_count(signal, garbage)


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("cut", [1, 7, 40])
def test_truncated_requests_are_malformed(signal: Signal, cut: int) -> None:
    data = serialize(request(signal, [[4, 4]], padding=30))
    with pytest.raises(wire.MalformedPayload):
        wire.validate_and_count(signal, data[:-cut])


@pytest.mark.parametrize("signal", list(Signal))
def test_invalid_utf8_in_a_string_field_is_malformed(signal: Signal) -> None:
    data = serialize(request(signal, [[1]]))
    assert data.count(b"i0.0.0") == 1
    with pytest.raises(wire.MalformedPayload):
        wire.validate_and_count(signal, data.replace(b"i0.0.0", b"i0.\xff\xfe0"))


# --- split -----------------------------------------------------------------------------------------------


def split_and_check(signal: Signal, message: Any, max_items: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """Split, then assert every promise of `wire.split`; returns the parts."""
    data = serialize(message)
    parts = wire.split(signal, data, max_items, max_bytes)
    original = collections.Counter(placed_items(signal, message))
    seen: collections.Counter[tuple[str, str, str, str, str]] = collections.Counter()
    overhead = max(
        (len(serialize(_shell(signal, r))) for r in getattr(message, _resources_field(signal))), default=0
    )
    biggest_item = max((len(serialize(v)) for v in _all_items(signal, message)), default=0)
    for part, count in parts:
        parsed = wire.parse(signal, part)
        assert wire.count_parsed(signal, parsed) == count
        assert count <= max_items or count == 1
        assert len(part) <= max(max_bytes, biggest_item) + overhead + 16
        assert_rightly_placed(signal, parsed)
        seen.update(placed_items(signal, parsed))
    assert seen == original, "every item exactly once, in its own resource and scope"
    joined = wire.parse(signal, b"".join(part for part, _ in parts))
    assert collections.Counter(placed_items(signal, joined)) == original
    return parts


def _shell(signal: Signal, resource: Any) -> Any:
    """The resource with its scopes but no items: what a part repeats around its items."""
    copy = type(resource)()
    copy.CopyFrom(resource)
    for scope in getattr(copy, _scopes_field(signal)):
        del getattr(scope, _items_field(signal))[:]
    return copy


def _all_items(signal: Signal, message: Any) -> Iterator[Any]:
    for resource in getattr(message, _resources_field(signal)):
        for scope in getattr(resource, _scopes_field(signal)):
            yield from getattr(scope, _items_field(signal))


@pytest.mark.parametrize("signal", list(Signal))
def test_a_request_within_the_limits_stays_whole(signal: Signal) -> None:
    data = serialize(request(signal, [[3, 2], [4]]))
    assert wire.split(signal, data, 100, 1_000_000) == [(data, 9)]


@pytest.mark.parametrize("signal", list(Signal))
def test_split_between_resources_keeps_resources_whole(signal: Signal) -> None:
    message = request(signal, [[3], [3], [3], [3]])
    parts = split_and_check(signal, message, max_items=6, max_bytes=1_000_000)
    assert [count for _, count in parts] == [6, 6]
    for part, _ in parts:
        assert len(getattr(wire.parse(signal, part), _resources_field(signal))) == 2


@pytest.mark.parametrize("signal", list(Signal))
def test_split_between_scopes_repeats_the_resource(signal: Signal) -> None:
    message = request(signal, [[2, 2, 2, 2]])
    parts = split_and_check(signal, message, max_items=4, max_bytes=1_000_000)
    assert [count for _, count in parts] == [4, 4]
    for part, _ in parts:
        [resource] = getattr(wire.parse(signal, part), _resources_field(signal))
        assert len(getattr(resource, _scopes_field(signal))) == 2


@pytest.mark.parametrize("signal", list(Signal))
def test_split_between_items_repeats_resource_and_scope(signal: Signal) -> None:
    message = request(signal, [[10]])
    parts = split_and_check(signal, message, max_items=3, max_bytes=1_000_000)
    assert [count for _, count in parts] == [3, 3, 3, 1]
    names = [item_name(signal, v) for part, _ in parts for v in _all_items(signal, wire.parse(signal, part))]
    assert names == [f"i0.0.{n}" for n in range(10)], "order is kept"


@pytest.mark.parametrize("signal", list(Signal))
def test_split_by_bytes_keeps_parts_near_max_bytes(signal: Signal) -> None:
    message = request(signal, [[20, 20]], padding=200)
    parts = split_and_check(signal, message, max_items=1000, max_bytes=2000)
    assert len(parts) > 4
    assert sum(count for _, count in parts) == 40


@pytest.mark.parametrize("signal", list(Signal))
def test_an_item_bigger_than_max_bytes_travels_alone(signal: Signal) -> None:
    message = request(signal, [[3]], padding=5000)
    parts = split_and_check(signal, message, max_items=100, max_bytes=1024)
    assert [count for _, count in parts] == [1, 1, 1]


def test_a_metric_is_never_cut_so_its_points_stay_together() -> None:
    message = metrics_request([_gauge("big", 7), _gauge("small", 1), _gauge("other", 2)])
    parts = wire.split(Signal.metrics, serialize(message), max_items=3, max_bytes=1_000_000)
    assert [count for _, count in parts] == [7, 3]
    assert [
        m.name for m in wire.parse(Signal.metrics, parts[0][0]).resource_metrics[0].scope_metrics[0].metrics
    ] == ["big"]


def test_metrics_of_every_kind_are_split_by_data_points() -> None:
    message = metrics_request(all_metric_kinds())
    parts = wire.split(Signal.metrics, serialize(message), max_items=5, max_bytes=1_000_000)
    assert [count for _, count in parts] == [5, 5, 5]
    assert sum(wire.validate_and_count(Signal.metrics, part) for part, _ in parts) == 15


shapes = st.lists(
    st.lists(st.integers(min_value=0, max_value=12), min_size=0, max_size=4), min_size=1, max_size=4
)


@hypothesis.settings(derandomize=True, max_examples=150, deadline=None)
@hypothesis.given(
    signal=st.sampled_from(list(Signal)),
    shape=shapes,
    padding=st.sampled_from([0, 40, 300]),
    max_items=st.integers(min_value=1, max_value=40),
    max_bytes=st.integers(min_value=100, max_value=6000),
)
def test_any_request_splits_into_parts_that_together_hold_every_item_once(
    signal: Signal, shape: list[list[int]], padding: int, max_items: int, max_bytes: int
) -> None:
    split_and_check(signal, request(signal, shape, padding), max_items, max_bytes)
