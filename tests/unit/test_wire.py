"""Requests kept as bytes: counted and validated without per-item objects, and split at resource, scope and
item boundaries so that no item is lost, duplicated or moved to another resource or scope.

The requests are built by tests/support/placed_requests.py, so every item's rightful place can be checked.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1 import metrics_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.otlp.signals import SIGNALS

from tests.support.placed_requests import (
    assert_rightly_placed,
    gauge,
    item_name,
    items_field,
    placed_items,
    request,
    resources_field,
    scopes_field,
    serialize,
)

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
        (len(serialize(_shell(signal, r))) for r in getattr(message, resources_field(signal))), default=0
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
    for scope in getattr(copy, scopes_field(signal)):
        del getattr(scope, items_field(signal))[:]
    return copy


def _all_items(signal: Signal, message: Any) -> Iterator[Any]:
    for resource in getattr(message, resources_field(signal)):
        for scope in getattr(resource, scopes_field(signal)):
            yield from getattr(scope, items_field(signal))


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
        assert len(getattr(wire.parse(signal, part), resources_field(signal))) == 2


@pytest.mark.parametrize("signal", list(Signal))
def test_split_between_scopes_repeats_the_resource(signal: Signal) -> None:
    message = request(signal, [[2, 2, 2, 2]])
    parts = split_and_check(signal, message, max_items=4, max_bytes=1_000_000)
    assert [count for _, count in parts] == [4, 4]
    for part, _ in parts:
        [resource] = getattr(wire.parse(signal, part), resources_field(signal))
        assert len(getattr(resource, scopes_field(signal))) == 2


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
    message = metrics_request([gauge("big", 7), gauge("small", 1), gauge("other", 2)])
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
