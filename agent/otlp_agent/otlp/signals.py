"""The three OTLP signals and what belongs to each: protobuf request/response types, gRPC method, HTTP path.

Everything that differs per signal is looked up here, so the rest of the agent handles signals generically.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp_agent.api.spec import Signal


@dataclasses.dataclass(frozen=True)
class SignalInfo:
    """Static facts about one signal."""

    signal: Signal
    request_type: Any
    response_type: Any
    grpc_service: str
    http_path: str
    item_noun: str  # what one item is called in logs and metrics
    rejected_field: str  # the partial_success counter field of the response


SIGNALS: dict[Signal, SignalInfo] = {
    Signal.traces: SignalInfo(
        Signal.traces,
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "/v1/traces",
        "spans",
        "rejected_spans",
    ),
    Signal.metrics: SignalInfo(
        Signal.metrics,
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
        "/v1/metrics",
        "data points",
        "rejected_data_points",
    ),
    Signal.logs: SignalInfo(
        Signal.logs,
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "opentelemetry.proto.collector.logs.v1.LogsService",
        "/v1/logs",
        "log records",
        "rejected_log_records",
    ),
}


def response_bytes(signal: Signal, rejected: int = 0, message: str = "") -> bytes:
    """A serialized Export*ServiceResponse, with partial_success when items were rejected."""
    info = SIGNALS[signal]
    response = info.response_type()
    if rejected or message:
        setattr(response.partial_success, info.rejected_field, rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())
