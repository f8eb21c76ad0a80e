"""OTLP requests whose every resource, scope and item is named by its place, so a test can check that after
a split, a route or a cut every item is still where it belongs, exactly once.

* `request(signal, shape)` — any signal, by shape (items per scope, per resource); `serialize` makes bytes.
* `placed_items` / `assert_rightly_placed` — where each item is, and the check that it is where its name says.
* `traces(shape)` — a traces request whose spans carry the given trace ids (for cuts by trace id).
* `resources_field` / `scopes_field` / `items_field` — a signal's field names at each level.

No tests live here (the wire tests are tests/unit/test_wire.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp.signals import SIGNALS

Shape = Sequence[Sequence[int]]  # items per scope, per resource


def attribute(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def gauge(name: str, points: int) -> metrics_pb2.Metric:
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
    metric = gauge(name, 1)
    metric.gauge.data_points[0].attributes.extend(extra)
    return metric


def item_name(signal: Signal, value: Any) -> str:
    return str(value.body.string_value if signal == Signal.logs else value.name)


def request(signal: Signal, shape: Shape, padding: int = 0) -> Any:
    """A request whose resources carry attribute r=<index> and schema URL, scopes are named s<r>.<s>, and
    items are named i<r>.<s>.<n>, so every item's rightful place can be checked after a split."""
    message = SIGNALS[signal].request_type()
    for r, scopes in enumerate(shape):
        resource = getattr(message, resources_field(signal)).add(schema_url=f"https://schema/{r}")
        resource.resource.attributes.append(attribute("r", str(r)))
        for s, count in enumerate(scopes):
            scope = getattr(resource, scopes_field(signal)).add(schema_url=f"https://scope-schema/{r}.{s}")
            scope.scope.name = f"s{r}.{s}"
            scope.scope.attributes.append(attribute("scope.r", str(r)))
            getattr(scope, items_field(signal)).extend(
                item(signal, f"i{r}.{s}.{n}", padding) for n in range(count)
            )
    return message


def resources_field(signal: Signal) -> str:
    return {
        Signal.traces: "resource_spans",
        Signal.metrics: "resource_metrics",
        Signal.logs: "resource_logs",
    }[signal]


def scopes_field(signal: Signal) -> str:
    return {Signal.traces: "scope_spans", Signal.metrics: "scope_metrics", Signal.logs: "scope_logs"}[signal]


def items_field(signal: Signal) -> str:
    return {Signal.traces: "spans", Signal.metrics: "metrics", Signal.logs: "log_records"}[signal]


def placed_items(signal: Signal, message: Any) -> Iterator[tuple[str, str, str, str, str]]:
    """(item name, resource attr r, resource schema URL, scope name, scope schema URL) for every item."""
    for resource in getattr(message, resources_field(signal)):
        [r] = [kv.value.string_value for kv in resource.resource.attributes if kv.key == "r"]
        for scope in getattr(resource, scopes_field(signal)):
            for value in getattr(scope, items_field(signal)):
                yield item_name(signal, value), r, resource.schema_url, scope.scope.name, scope.schema_url


def assert_rightly_placed(signal: Signal, message: Any) -> None:
    for name, r, resource_schema, scope_name, scope_schema in placed_items(signal, message):
        rr, ss, _ = name[1:].split(".")
        assert (r, resource_schema) == (rr, f"https://schema/{rr}"), name
        assert (scope_name, scope_schema) == (f"s{rr}.{ss}", f"https://scope-schema/{rr}.{ss}"), name


def serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def traces(shape: list[list[list[bytes]]]) -> trace_service_pb2.ExportTraceServiceRequest:
    """Resources r<i> with scopes s<i>.<j> whose spans carry the given trace ids, named by position."""
    message = trace_service_pb2.ExportTraceServiceRequest()
    for r, scopes in enumerate(shape):
        resource = message.resource_spans.add(schema_url=f"https://r{r}")
        resource.resource.attributes.append(attribute("r", str(r)))
        for s, trace_ids in enumerate(scopes):
            scope = resource.scope_spans.add(schema_url=f"https://s{r}.{s}")
            scope.scope.name = f"s{r}.{s}"
            for n, trace_id in enumerate(trace_ids):
                scope.spans.add(name=f"{r}.{s}.{n}", trace_id=trace_id, span_id=os.urandom(8))
    return message
