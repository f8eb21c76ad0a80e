"""Real telemetry made by the official OpenTelemetry Python SDK, and its OTLP exporters aimed at a backend.

Tests feed what these return to the SDK's own OTLP exporters (gRPC or HTTP), so the bytes the backend
(or the agent) receives are exactly what an instrumented application sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk import resources, trace
from opentelemetry.sdk._logs import export as logs_export
from opentelemetry.sdk.metrics import export as metrics_export
from opentelemetry.sdk.trace import export as trace_export
from opentelemetry.sdk.trace.export import in_memory_span_exporter

SCOPE = "otlp-backend-tests"


def make_spans(
    count: int, resource_attributes: Mapping[str, Any], attributes: Mapping[str, Any] | None = None
) -> list[trace.ReadableSpan]:
    """`count` finished spans (the odd ones children of the even ones) from one TracerProvider."""
    memory = in_memory_span_exporter.InMemorySpanExporter()
    provider = trace.TracerProvider(resource=resources.Resource.create(dict(resource_attributes)))
    provider.add_span_processor(trace_export.SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(SCOPE)
    for index in range(0, count, 2):
        with tracer.start_as_current_span(f"op-{index}", attributes={"index": index, **(attributes or {})}):
            if index + 1 < count:
                with tracer.start_as_current_span(f"op-{index + 1}", attributes={"index": index + 1}):
                    pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def root_spans(
    count: int,
    resource_attributes: Mapping[str, Any],
    name: str,
    sampler: trace.sampling.Sampler | None = None,
) -> list[trace.ReadableSpan]:
    """`count` finished root spans `name-0`, `name-1`, ... from one TracerProvider (with `sampler`: those
    it keeps)."""
    memory = in_memory_span_exporter.InMemorySpanExporter()
    provider = trace.TracerProvider(
        resource=resources.Resource.create(dict(resource_attributes)), sampler=sampler
    )
    provider.add_span_processor(trace_export.SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(SCOPE)
    for index in range(count):
        with tracer.start_as_current_span(f"{name}-{index}"):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def make_metrics(resource_attributes: Mapping[str, Any]) -> metrics_export.MetricsData:
    """A counter with two attribute sets and a histogram with one: three data points in all."""
    reader = metrics_export.InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(
        resource=resources.Resource.create(dict(resource_attributes)), metric_readers=[reader]
    )
    meter = provider.get_meter(SCOPE)
    counter = meter.create_counter("requests")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/b"})
    meter.create_histogram("latency", unit="ms").record(12.5, {"route": "/a"})
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def make_logs(count: int, resource_attributes: Mapping[str, Any]) -> list[sdk_logs.ReadableLogRecord]:
    """`count` log records with bodies "log-0", "log-1", ..."""
    memory = logs_export.InMemoryLogRecordExporter()
    provider = sdk_logs.LoggerProvider(resource=resources.Resource.create(dict(resource_attributes)))
    provider.add_log_record_processor(logs_export.SimpleLogRecordProcessor(memory))
    logger = provider.get_logger(SCOPE)
    for index in range(count):
        logger.emit(body=f"log-{index}", severity_text="INFO", attributes={"index": index})
    provider.shutdown()
    return list(memory.get_finished_logs())


def exporters(
    transport: str, endpoint: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None
) -> tuple[Any, Any, Any]:
    """The SDK's gzip-compressing OTLP span, metric and log exporters for `transport` ("grpc"/"http").

    `endpoint` is the backend's `grpc_endpoint` or `http_endpoint`.
    """
    if transport == "grpc":
        common: dict[str, Any] = {"endpoint": endpoint, "insecure": True, "timeout": timeout}
        common.update(compression=grpc.Compression.Gzip, headers=dict(headers or {}))
        return GrpcSpanExporter(**common), GrpcMetricExporter(**common), GrpcLogExporter(**common)
    common = {"timeout": timeout, "compression": HttpCompression.Gzip, "headers": dict(headers or {})}
    return (
        HttpSpanExporter(endpoint=f"{endpoint}/v1/traces", **common),
        HttpMetricExporter(endpoint=f"{endpoint}/v1/metrics", **common),
        HttpLogExporter(endpoint=f"{endpoint}/v1/logs", **common),
    )
