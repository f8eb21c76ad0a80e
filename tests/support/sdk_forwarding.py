"""The official SDK's telemetry sent through an agent to a recording backend (tests/support/otlp_backend),
and the check that it arrived intact: what the forwarding tests share.

* `exporter_to(backend, protocol, compression)` — an agent exporter aimed at the backend (header x-tenant).
* `send_all_signals(transport, endpoint)` — 40 spans, 3 metric points and 25 log records exported with the
  SDK's exporters over "grpc" or "http", every export answered SUCCESS; returns what was sent.
* `assert_spans_intact(backend, spans)` — every span arrived exactly once, with its name, its `index`
  attribute and `RESOURCE`, the resource every sent item carries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.otlp_backend import OtlpBackend, sdk_samples

RESOURCE = {"service.name": "checkout", "k8s.namespace.name": "shop", "deployment.environment": "test"}


def exporter_to(
    backend: OtlpBackend, protocol: str, compression: str, name: str = "backend"
) -> dict[str, Any]:
    endpoint = backend.grpc_direct_endpoint if protocol == "grpc" else backend.http_endpoint
    return {
        "name": name,
        "endpoint": endpoint,
        "protocol": protocol,
        "compression": compression,
        "tls": {"insecure": True},
        "headers": {"x-tenant": "shop"},
    }


async def send_all_signals(transport: str, endpoint: str) -> tuple[list[Any], Any, list[Any]]:
    """Export 40 spans, 3 metric points and 25 log records with the SDK's exporters (gzip)."""
    spans = sdk_samples.make_spans(40, RESOURCE)
    metrics = sdk_samples.make_metrics(RESOURCE)
    records = sdk_samples.make_logs(25, RESOURCE)
    span_exporter, metric_exporter, log_exporter = sdk_samples.exporters(transport, endpoint)
    try:
        results = await asyncio.gather(
            asyncio.to_thread(span_exporter.export, spans),
            asyncio.to_thread(metric_exporter.export, metrics),
            asyncio.to_thread(log_exporter.export, records),
        )
    finally:
        for exporter in (span_exporter, metric_exporter, log_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert [result.name for result in results] == ["SUCCESS"] * 3
    return spans, metrics, records


def assert_spans_intact(backend: OtlpBackend, sent: list[Any]) -> None:
    received = backend.spans()
    assert len(received) == len(sent), "every span exactly once"
    by_id = {(span.trace_id, span.span_id): (resource, span) for resource, _, span in received}
    for original in sent:
        context = original.get_span_context()
        resource, span = by_id[(context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big"))]
        assert span.name == original.name
        assert {kv.key: kv.value.int_value for kv in span.attributes}["index"] == original.attributes["index"]
        assert {key: resource[key] for key in RESOURCE} == RESOURCE
