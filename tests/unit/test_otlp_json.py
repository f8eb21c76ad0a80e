"""OTLP/JSON in and out: real OTLP JSON (hex ids, int64 strings, integer enums), loss-free round trips, and
bad items rejected one by one with a count for partial success."""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import otlp_json, wire
from otlp_agent.otlp.signals import SIGNALS

from tests.support import fuzz_requests

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")


def any_value(**kwargs: Any) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(**kwargs)


def rich_attributes() -> list[common_pb2.KeyValue]:
    """One attribute of every AnyValue kind, with nesting and awkward numbers."""
    nested = common_pb2.KeyValueList(
        values=[
            common_pb2.KeyValue(key="inner", value=any_value(int_value=-(2**63))),
            common_pb2.KeyValue(
                key="list",
                value=any_value(
                    array_value=common_pb2.ArrayValue(
                        values=[any_value(bool_value=True), any_value(double_value=-math.inf)]
                    )
                ),
            ),
        ]
    )
    return [
        common_pb2.KeyValue(key="s", value=any_value(string_value="héllo ✓")),
        common_pb2.KeyValue(key="i", value=any_value(int_value=2**62 + 1)),
        common_pb2.KeyValue(key="d", value=any_value(double_value=0.1)),
        common_pb2.KeyValue(key="nan", value=any_value(double_value=math.nan)),
        common_pb2.KeyValue(key="inf", value=any_value(double_value=math.inf)),
        common_pb2.KeyValue(key="b", value=any_value(bytes_value=b"\x00\xffbinary")),
        common_pb2.KeyValue(key="kv", value=any_value(kvlist_value=nested)),
        common_pb2.KeyValue(key="empty", value=any_value()),
    ]


def traces() -> Any:
    message = SIGNALS[Signal.traces].request_type()
    resource = message.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.24.0")
    resource.resource.attributes.extend(rich_attributes())
    scope = resource.scope_spans.add()
    scope.scope.name, scope.scope.version = "lib", "1.0"
    span = trace_pb2.Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_ID,
        name="GET /items",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=2**64 - 1,
        attributes=rich_attributes(),
        events=[trace_pb2.Span.Event(name="e", time_unix_nano=5, attributes=rich_attributes()[:2])],
        links=[trace_pb2.Span.Link(trace_id=TRACE_ID, span_id=SPAN_ID, flags=257)],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
        flags=1,
    )
    scope.spans.extend([span, trace_pb2.Span(name="bare")])
    return message


def metrics() -> Any:
    message = SIGNALS[Signal.metrics].request_type()
    scope = message.resource_metrics.add().scope_metrics.add()
    exemplar = metrics_pb2.Exemplar(trace_id=TRACE_ID, span_id=SPAN_ID, as_double=1.5, time_unix_nano=7)
    number = metrics_pb2.NumberDataPoint
    scope.metrics.extend(
        [
            metrics_pb2.Metric(
                name="g",
                unit="1",
                gauge=metrics_pb2.Gauge(
                    data_points=[number(as_double=math.nan), number(as_int=-(2**40), exemplars=[exemplar])]
                ),
            ),
            metrics_pb2.Metric(
                name="s",
                sum=metrics_pb2.Sum(
                    data_points=[number(as_double=math.inf, start_time_unix_nano=1, time_unix_nano=2)],
                    aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
                    is_monotonic=True,
                ),
            ),
            metrics_pb2.Metric(
                name="h",
                histogram=metrics_pb2.Histogram(
                    data_points=[
                        metrics_pb2.HistogramDataPoint(
                            count=3, sum=-0.5, bucket_counts=[1, 2], explicit_bounds=[1.0], min=-1.0, max=0.25
                        )
                    ],
                    aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
                ),
            ),
            metrics_pb2.Metric(
                name="e",
                exponential_histogram=metrics_pb2.ExponentialHistogram(
                    data_points=[
                        metrics_pb2.ExponentialHistogramDataPoint(
                            count=2,
                            scale=-3,
                            zero_count=1,
                            positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(
                                offset=-2, bucket_counts=[1]
                            ),
                        )
                    ]
                ),
            ),
            metrics_pb2.Metric(
                name="q",
                summary=metrics_pb2.Summary(
                    data_points=[
                        metrics_pb2.SummaryDataPoint(
                            count=4,
                            sum=10.0,
                            quantile_values=[
                                metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0)
                            ],
                        )
                    ]
                ),
            ),
        ]
    )
    return message


def logs() -> Any:
    message = SIGNALS[Signal.logs].request_type()
    scope = message.resource_logs.add().scope_logs.add()
    scope.log_records.extend(
        [
            logs_pb2.LogRecord(
                time_unix_nano=3,
                observed_time_unix_nano=4,
                severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
                severity_text="WARN",
                body=any_value(kvlist_value=common_pb2.KeyValueList(values=rich_attributes())),
                attributes=rich_attributes(),
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
                flags=1,
                event_name="app.event",
            ),
            logs_pb2.LogRecord(body=any_value(string_value="plain")),
        ]
    )
    return message


BUILDERS = {Signal.traces: traces, Signal.metrics: metrics, Signal.logs: logs}


def wire_bytes(message: Any) -> bytes:
    # Compare serialized forms: NaN != NaN would make message equality useless here.
    return bytes(message.SerializeToString(deterministic=True))


def convert(signal: Signal, document: Any) -> otlp_json.Converted:
    return otlp_json.parse_request(signal, orjson.dumps(document))


@pytest.mark.parametrize("signal", list(Signal))
def test_protobuf_to_json_and_back_is_lossless(signal: Signal) -> None:
    original = BUILDERS[signal]()
    converted = otlp_json.parse_request(signal, otlp_json.to_json(original))
    assert (converted.rejected, converted.error) == (0, "")
    assert wire_bytes(converted.message) == wire_bytes(original)


def test_json_output_follows_the_otlp_json_rules() -> None:
    document = orjson.loads(otlp_json.to_json(traces()))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE_ID.hex()
    assert span["spanId"] == SPAN_ID.hex() and span["parentSpanId"] == PARENT_ID.hex()
    assert span["startTimeUnixNano"] == "1700000000123456789"
    assert span["endTimeUnixNano"] == str(2**64 - 1)
    assert span["kind"] == 2 and span["status"]["code"] == 2
    values = {a["key"]: a["value"] for a in span["attributes"]}
    assert values["i"] == {"intValue": str(2**62 + 1)}
    assert values["nan"] == {"doubleValue": "NaN"} and values["inf"] == {"doubleValue": "Infinity"}
    assert values["b"] == {"bytesValue": base64.b64encode(b"\x00\xffbinary").decode()}
    assert values["kv"]["kvlistValue"]["values"][1]["value"]["arrayValue"]["values"][1] == {
        "doubleValue": "-Infinity"
    }


def _ids_to_base64(node: Any) -> Any:
    """OTLP/JSON -> proto3 canonical JSON: the only difference is hex ids."""
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode()
        if key in ("traceId", "spanId", "parentSpanId")
        else _ids_to_base64(value)
        for key, value in node.items()
    }


@pytest.mark.parametrize("signal", list(Signal))
def test_json_output_is_real_otlp_json_for_the_protobuf_reference_parser(signal: Signal) -> None:
    original = BUILDERS[signal]()
    canonical = json.dumps(_ids_to_base64(orjson.loads(otlp_json.to_json(original))))
    reference = json_format.Parse(canonical, SIGNALS[signal].request_type())
    assert wire_bytes(reference) == wire_bytes(original)


def test_json_from_the_protobuf_reference_printer_is_accepted_once_ids_are_hex() -> None:
    original = logs()
    printed = json.loads(json_format.MessageToJson(original))
    record = printed["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["traceId"] = base64.b64decode(record["traceId"]).hex()
    record["spanId"] = base64.b64decode(record["spanId"]).hex()
    record["severityNumber"] = 13  # OTLP/JSON enums are integers; the reference printer writes names
    converted = convert(Signal.logs, printed)
    assert wire_bytes(converted.message) == wire_bytes(original)


def test_snake_case_keys_are_accepted() -> None:
    document = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {"trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex(), "start_time_unix_nano": 9}
                        ]
                    }
                ]
            }
        ]
    }
    span = convert(Signal.traces, document).message.resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id, span.start_time_unix_nano) == (TRACE_ID, SPAN_ID, 9)


def test_unknown_fields_are_ignored_at_every_level() -> None:
    document = {
        "future": {"x": 1},
        "resourceSpans": [
            {"newThing": [1, 2], "scopeSpans": [{"spans": [{"name": "a", "notYetInOtlp": True}]}]}
        ],
    }
    converted = convert(Signal.traces, document)
    assert converted.rejected == 0
    assert converted.message.resource_spans[0].scope_spans[0].spans[0].name == "a"


def test_numbers_may_be_json_numbers_or_strings_and_nulls_mean_unset() -> None:
    document = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "m",
                                "description": None,
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {"asInt": 5, "timeUnixNano": "7"},
                                        {"asDouble": "Infinity"},
                                    ],
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    metric = convert(Signal.metrics, document).message.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.description == ""
    assert (metric.sum.data_points[0].as_int, metric.sum.data_points[0].time_unix_nano) == (5, 7)
    assert math.isinf(metric.sum.data_points[1].as_double)


def spans_document(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"traceId": "not-hex"}, "Span[0].traceId: ids are hex strings in OTLP/JSON"),
        ({"spanId": "0102"}, "Span[0].spanId: expected 16 hex digits, got 4"),
        (
            {"traceId": base64.b64encode(TRACE_ID).decode()},
            "Span[0].traceId: ids are hex strings in OTLP/JSON",
        ),
        ({"kind": "SERVER"}, "Span[0].kind: expected an integer, got 'SERVER'"),
        (
            {"attributes": [{"key": "k", "value": {"bytesValue": "!!"}}]},
            "Span[0].attributes[0].value.bytesValue",
        ),
        ({"status": "ok"}, "Span[0].status: expected an object"),
    ],
)
def test_a_bad_span_is_rejected_alone_with_a_count_and_its_path(bad: dict[str, Any], error: str) -> None:
    converted = convert(Signal.traces, spans_document({"name": "bad", **bad}, {"name": "good"}))
    assert converted.rejected == 1
    assert converted.error.startswith(error)
    assert [s.name for s in converted.message.resource_spans[0].scope_spans[0].spans] == ["good"]


def test_rejections_are_summed_and_the_first_reason_kept() -> None:
    converted = convert(
        Signal.traces, spans_document({"name": 1}, {"name": "ok"}, {"traceId": "zz"}, {"spanId": "zz"})
    )
    assert converted.rejected == 3
    assert converted.error == "Span[0].name: expected a string, got int"


def test_a_metric_with_bad_points_counts_all_its_data_points() -> None:
    bad_gauge = {"name": "bad", "gauge": {"dataPoints": [{"asInt": "x"}, {"asDouble": 1}, {"asDouble": 2}]}}
    good_sum = {"name": "ok", "sum": {"dataPoints": [{"asInt": "5"}]}}
    document = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [bad_gauge, good_sum]}]}]}
    converted = convert(Signal.metrics, document)
    assert converted.rejected == 3
    assert converted.error == "Metric[0].gauge.dataPoints[0].asInt: expected an integer, got 'x'"
    assert [m.name for m in converted.message.resource_metrics[0].scope_metrics[0].metrics] == ["ok"]


def test_a_bad_log_record_is_rejected_alone() -> None:
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "high"}, {"body": {}}]}]}]}
    converted = convert(Signal.logs, document)
    assert (converted.rejected, len(converted.message.resource_logs[0].scope_logs[0].log_records)) == (1, 1)
    assert converted.error.startswith("LogRecord[0].severityNumber: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "the body must be a JSON object"),
        (b'"spans"', "the body must be a JSON object"),
        (b"{", "invalid JSON: "),
        (b'{"resourceSpans": {}}', "resourceSpans: expected an array"),
        (b'{"resourceSpans": [5]}', "resourceSpans[0]: expected an object"),
        (b'{"resourceSpans": [{"resource": 5}]}', "resourceSpans[0].resource: expected an object"),
        (
            b'{"resourceSpans": [{"resource": {"attributes": [{"key": 1}]}}]}',
            "resourceSpans[0].resource.attributes[0].key: expected a string, got int",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"scope": {"name": 5}}]}]}',
            "resourceSpans[0].scopeSpans[0].scope.name: expected a string, got int",
        ),
    ],
)
def test_whole_request_errors_name_the_path(body: bytes, message: str) -> None:
    with pytest.raises(otlp_json.JsonError) as caught:
        otlp_json.parse_request(Signal.traces, body)
    assert str(caught.value).startswith(message)


def test_responses_are_otlp_json_with_partial_success_only_when_needed() -> None:
    assert otlp_json.response_json(Signal.traces) == b"{}"
    assert orjson.loads(otlp_json.response_json(Signal.metrics, 3, "bad points")) == {
        "partialSuccess": {"rejectedDataPoints": "3", "errorMessage": "bad points"}
    }
    assert (
        orjson.loads(otlp_json.response_json(Signal.logs, 1, "x"))["partialSuccess"]["rejectedLogRecords"]
        == "1"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"droppedAttributesCount": -1},
        {"startTimeUnixNano": "-5"},
        {"kind": 2**40},
        {"attributes": [{"key": "k", "value": {"intValue": "99999999999999999999"}}]},
    ],
)
def test_a_span_with_an_out_of_range_integer_is_rejected_alone(bad: dict[str, Any]) -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "bad", **bad}, {"name": "good"}]}]}]}
    converted = otlp_json.parse_request(Signal.traces, orjson.dumps(body))
    assert converted.rejected == 1
    assert converted.error.startswith("Span[0].") and "out of range" in converted.error
    assert [s.name for s in converted.message.resource_spans[0].scope_spans[0].spans] == ["good"]


def test_a_request_nested_past_the_value_depth_limit_costs_its_item_even_on_a_shallow_stack() -> None:
    body = fuzz_requests.deeply_nested_json(Signal.traces, 100)  # 300 levels: orjson accepts up to 1024
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(250)  # how deep a stack a request handler has left varies; here it is shallow
    try:
        converted = otlp_json.parse_request(Signal.traces, body)
    finally:
        sys.setrecursionlimit(limit)
    assert converted.rejected == 1, (
        "the span nested past the limit is rejected alone, before the stack runs out"
    )
    assert "nested" in converted.error


def nested_value(depth: int, arrays: bool = True) -> dict[str, Any]:
    """An AnyValue with `depth` kvlists (and arrays, every other level, if `arrays`) around a string."""
    value: dict[str, Any] = {"stringValue": "leaf"}
    for level in range(depth):
        if level % 2 and arrays:
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def test_values_nested_to_the_limit_in_the_deepest_place_are_kept_and_parse_as_protobuf() -> None:
    # kvlists cost 3 message levels each, and exemplar attributes sit 9 levels down: the worst case.
    deepest = nested_value(otlp_json.MAX_VALUE_DEPTH, arrays=False)
    exemplar = {"filteredAttributes": [{"key": "v", "value": deepest}]}
    metric = {"name": "h", "histogram": {"dataPoints": [{"exemplars": [exemplar]}]}}
    document = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
    converted = convert(Signal.metrics, document)
    assert converted.rejected == 0
    assert wire.validate_and_count(Signal.metrics, converted.payload) == 1  # upb parses it


def test_a_value_nested_deeper_rejects_its_item_alone() -> None:
    too_deep = nested_value(otlp_json.MAX_VALUE_DEPTH + 1)
    deep = {"name": "deep", "attributes": [{"key": "v", "value": too_deep}]}
    converted = convert(Signal.traces, spans_document(deep, {"name": "flat"}))
    assert converted.rejected == 1
    assert f"values nested more than {otlp_json.MAX_VALUE_DEPTH} deep" in converted.error
    assert [s.name for s in converted.message.resource_spans[0].scope_spans[0].spans] == ["flat"]


def test_the_common_attribute_shapes_and_the_general_path_agree() -> None:
    """Attributes take a fast path when plain ({"key", "value": {one scalar}}); the same attributes spelled
    so they take the general path (snake_case, an extra unknown field) must give the same bytes."""
    plain = [
        {"key": "s", "value": {"stringValue": "x" * 300}},
        {"key": "é", "value": {"stringValue": ""}},
        {"key": "i", "value": {"intValue": 8080}},
        {"key": "big", "value": {"intValue": "-5"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "d", "value": {"doubleValue": -0.0}},
        {"key": "", "value": {"stringValue": "keyless"}},
    ]
    general = [{"key": a["key"], "value": a["value"], "x": 1} for a in plain]
    fast = convert(Signal.traces, spans_document({"attributes": plain})).message
    slow = convert(Signal.traces, spans_document({"attributes": general})).message
    assert wire_bytes(fast) == wire_bytes(slow)
    values = fast.resource_spans[0].scope_spans[0].spans[0].attributes
    assert (values[2].value.int_value, values[3].value.int_value, values[4].value.HasField("bool_value")) == (
        8080,
        -5,
        True,
    )
