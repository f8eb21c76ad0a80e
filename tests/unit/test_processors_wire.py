"""Property: what the processors do on the wire (resource entries cut as bytes, lite schemas, KeyValues
rewritten as bytes) is exactly what a protobuf parse-modify-serialize does (see
tests/support/processor_reference): same messages after parsing, same item counts, same drops per rule,
same redactions — for random requests of every signal and random processor configurations."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api.spec import Signal

from tests.support.processor_check import check

KEYS = ("service.name", "k8s.namespace.name", "user.email", "card", "http.route", "n")
TEXTS = ("payments", "shop", "ann@example.com", "4111 1111 1111 1111", "/a", "", "x@y.org 12")


def any_values() -> st.SearchStrategy[common_pb2.AnyValue]:
    return st.one_of(
        st.sampled_from(TEXTS).map(lambda t: common_pb2.AnyValue(string_value=t)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: common_pb2.AnyValue(int_value=i)),
        st.booleans().map(lambda b: common_pb2.AnyValue(bool_value=b)),
        st.sampled_from((0.5, -2.0, 1e300)).map(lambda d: common_pb2.AnyValue(double_value=d)),
        st.binary(max_size=4).map(lambda b: common_pb2.AnyValue(bytes_value=b)),
        st.just(common_pb2.AnyValue()),
    )


def attributes(max_size: int = 4) -> st.SearchStrategy[list[common_pb2.KeyValue]]:
    kv = st.builds(lambda k, v: common_pb2.KeyValue(key=k, value=v), st.sampled_from(KEYS), any_values())
    return st.lists(kv, max_size=max_size)


def scope() -> st.SearchStrategy[common_pb2.InstrumentationScope]:
    return st.sampled_from(("flask", "db", "")).map(lambda n: common_pb2.InstrumentationScope(name=n))


TRACE_IDS = st.one_of(st.binary(min_size=16, max_size=16), st.just(b""), st.just(bytes(16)))
STATES = st.sampled_from(
    ("", "ot=th:8", "ot=th:c;rv:fedcba98765432", "vendor=x,ot=th:0", "ot=th:zz", "ot=rv:00000000000001")
)


def span() -> st.SearchStrategy[trace_pb2.Span]:
    event = st.builds(lambda a: trace_pb2.Span.Event(name="e", attributes=a), attributes(2))
    return st.builds(
        lambda tid, state, name, kind, code, attrs, events: trace_pb2.Span(
            trace_id=tid,
            span_id=b"\x01" * 8,
            trace_state=state,
            name=name,
            kind=kind,
            attributes=attrs,
            events=events,
            status=trace_pb2.Status(code=code),
        ),
        TRACE_IDS,
        STATES,
        st.sampled_from(("GET /a", "POST /b", "health")),
        st.integers(0, 5),
        st.integers(0, 2),
        attributes(),
        st.lists(event, max_size=2),
    )


def log_record() -> st.SearchStrategy[logs_pb2.LogRecord]:
    return st.builds(
        lambda tid, severity, body, attrs: logs_pb2.LogRecord(
            trace_id=tid, severity_number=severity, body=body, attributes=attrs, time_unix_nano=7
        ),
        TRACE_IDS,
        st.integers(0, 24),
        any_values(),
        attributes(),
    )


def metric() -> st.SearchStrategy[metrics_pb2.Metric]:
    number = st.builds(lambda a: metrics_pb2.NumberDataPoint(attributes=a, as_int=1), attributes(3))
    histogram = st.builds(lambda a: metrics_pb2.HistogramDataPoint(attributes=a, count=1), attributes(3))

    def make(name: str, kind: int, points: list[Any], hpoints: list[Any]) -> metrics_pb2.Metric:
        if kind == 0:
            return metrics_pb2.Metric(name=name, gauge=metrics_pb2.Gauge(data_points=points))
        if kind == 1:
            return metrics_pb2.Metric(name=name, sum=metrics_pb2.Sum(data_points=points, is_monotonic=True))
        if kind == 2:
            return metrics_pb2.Metric(name=name, histogram=metrics_pb2.Histogram(data_points=hpoints))
        return metrics_pb2.Metric(name=name)

    return st.builds(
        make,
        st.sampled_from(("requests", "latency")),
        st.integers(0, 3),
        st.lists(number, max_size=3),
        st.lists(histogram, max_size=3),
    )


def request(signal: Signal) -> st.SearchStrategy[bytes]:
    resource = st.builds(lambda a: resource_pb2.Resource(attributes=a), attributes())
    if signal == Signal.traces:
        scopes = st.lists(
            st.builds(
                lambda s, i: trace_pb2.ScopeSpans(scope=s, spans=i), scope(), st.lists(span(), max_size=4)
            ),
            max_size=2,
        )
        entry = st.builds(lambda r, s: trace_pb2.ResourceSpans(resource=r, scope_spans=s), resource, scopes)
        message = st.builds(
            lambda e: trace_service_pb2.ExportTraceServiceRequest(resource_spans=e),
            st.lists(entry, max_size=3),
        )
    elif signal == Signal.logs:
        scopes = st.lists(
            st.builds(
                lambda s, i: logs_pb2.ScopeLogs(scope=s, log_records=i),
                scope(),
                st.lists(log_record(), max_size=4),
            ),
            max_size=2,
        )
        entry = st.builds(lambda r, s: logs_pb2.ResourceLogs(resource=r, scope_logs=s), resource, scopes)
        message = st.builds(
            lambda e: logs_service_pb2.ExportLogsServiceRequest(resource_logs=e), st.lists(entry, max_size=3)
        )
    else:
        scopes = st.lists(
            st.builds(
                lambda s, i: metrics_pb2.ScopeMetrics(scope=s, metrics=i),
                scope(),
                st.lists(metric(), max_size=3),
            ),
            max_size=2,
        )
        entry = st.builds(
            lambda r, s: metrics_pb2.ResourceMetrics(resource=r, scope_metrics=s), resource, scopes
        )
        message = st.builds(
            lambda e: metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=e),
            st.lists(entry, max_size=3),
        )
    return message.map(lambda m: m.SerializeToString())


RESOURCE_ACTIONS = [
    {"key": "deployment.environment", "action": "upsert", "value": "prod"},
    {"key": "service.name", "action": "insert", "value": "unknown"},
    {"key": "n", "action": "update", "fromAttribute": "service.name"},
    {"key": "user.email", "action": "hash"},
    {"keyRegex": "k8s\\..*", "action": "delete"},
    {"key": "card", "action": "redact", "regex": "[0-9]{4}"},
    {
        "key": "http.route",
        "action": "delete",
        "match": {"all": [{"resource": {"attribute": "service.name", "equals": "shop"}}]},
    },
]
ATTRIBUTE_ACTIONS = [
    {"key": "user.email", "action": "redact", "regex": "[a-z]+@", "replacement": "#"},
    {"keyRegex": "card|n", "action": "hash"},
    {"key": "k8s.namespace.name", "action": "delete"},
    {"key": "http.route", "action": "upsert", "fromAttribute": "service.name"},
    {"key": "tier", "action": "insert", "value": "gold", "signals": ["traces", "logs"]},
    {
        "key": "card",
        "action": "update",
        "value": "x",
        "match": {"any": [{"attribute": {"attribute": "n", "exists": True}}]},
    },
    {
        "key": "service.name",
        "action": "delete",
        "match": {"not": [{"resource": {"attribute": "service.name", "in": ["shop"]}}]},
    },
    {"key": "n", "action": "delete", "match": {"all": [{"spanName": {"regex": "GET .*"}}]}},
    {"key": "n", "action": "hash", "match": {"all": [{"severity": {"atLeast": "WARN"}}]}},
    {
        "key": "n",
        "action": "redact",
        "regex": "[0-9]",
        "match": {"all": [{"metricType": ["sum", "histogram"]}]},
    },
]
FILTER_RULES = [
    {"name": "shop", "all": [{"resource": {"attribute": "service.name", "equals": "shop"}}]},
    {"name": "db", "any": [{"scopeName": {"equals": "db"}}]},
    {"name": "health", "any": [{"spanName": {"equals": "health"}}, {"spanKind": ["client"]}]},
    {
        "name": "errors-kept",
        "not": [{"spanStatus": ["error"]}],
        "all": [{"attribute": {"attribute": "n", "exists": True}}],
    },
    {"name": "quiet", "all": [{"severity": {"below": "INFO"}}]},
    {"name": "body", "all": [{"body": {"regex": ".*@.*"}}]},
    {"name": "latency", "all": [{"metricName": {"in": ["latency"]}}]},
    {"name": "points", "all": [{"attribute": {"attribute": "card", "regex": "4.*"}}], "signals": ["metrics"]},
    {
        "name": "mixed",
        "any": [
            {"resource": {"attribute": "n", "exists": True}},
            {"attribute": {"attribute": "user.email", "exists": True}},
        ],
    },
]
SAMPLING = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "ratio": st.sampled_from((0.0, 0.1, 0.5, 0.99)),
            "mode": st.sampled_from(("proportional", "equalizing")),
            "precision": st.integers(1, 14),
            "signals": st.sampled_from((["traces"], ["logs"], ["traces", "logs"])),
            "hashSeed": st.integers(0, 2**32 - 1),
        }
    ),
)


@st.composite
def processors(draw: st.DrawFn) -> dict[str, Any]:
    found: dict[str, Any] = {}
    resource = draw(st.lists(st.sampled_from(RESOURCE_ACTIONS), max_size=3, unique_by=lambda a: str(a)))
    attrs = draw(st.lists(st.sampled_from(ATTRIBUTE_ACTIONS), max_size=4, unique_by=lambda a: str(a)))
    rules_ = draw(st.lists(st.sampled_from(FILTER_RULES), max_size=3, unique_by=lambda r: r["name"]))
    sampling = draw(SAMPLING)
    if resource:
        found["resource"] = {"actions": resource}
    if attrs:
        found["attributes"] = {"actions": attrs}
    if rules_:
        found["filter"] = {"rules": rules_}
    if sampling:
        found["sampling"] = sampling
    return found


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(request(Signal.traces), processors())
def test_traces_rewritten_on_the_wire_equal_a_protobuf_parse_modify_serialize(
    data: bytes, config: Any
) -> None:
    check(Signal.traces, data, config)


@SETTINGS
@given(request(Signal.logs), processors())
def test_logs_rewritten_on_the_wire_equal_a_protobuf_parse_modify_serialize(data: bytes, config: Any) -> None:
    check(Signal.logs, data, config)


@SETTINGS
@given(request(Signal.metrics), processors())
def test_metrics_rewritten_on_the_wire_equal_a_protobuf_parse_modify_serialize(
    data: bytes, config: Any
) -> None:
    check(Signal.metrics, data, config)
