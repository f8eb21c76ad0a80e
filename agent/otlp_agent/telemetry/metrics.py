"""The agent's own Prometheus metrics (one registry per agent, so tests can run several in a process).

What the agent shares with the OpenTelemetry Collector has the collector's names, units and label keys
(`collector_metrics`); the process and build metrics are in `process_metrics`; what only the agent has is
named `otlp_agent_*`, every drop with a `reason` label. docs/agent.md lists every metric, and a test
compares that list with a live /metrics. No `_created` series are served (the collector serves none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import prometheus_client as prom
from prometheus_client import core as prom_core
from prometheus_client import registry as prom_registry

from otlp_agent.telemetry import collector_metrics, logs, process_metrics

prom.disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide, like the operator's

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class AgentMetrics:
    """Every metric the agent exports on /metrics."""

    # Made by collector_metrics (the collector's names): see there for each one's labels.
    received_items: collector_metrics.Split
    refused_items: collector_metrics.Both
    exported_items: collector_metrics.Split
    failed_items: collector_metrics.Both
    enqueue_failed: collector_metrics.Split
    queue_bytes: prom.Gauge
    queue_capacity: prom.Gauge
    processor_incoming: prom.Counter
    processor_outgoing: prom.Counter
    batch_items: prom.Histogram
    batch_bytes: prom.Histogram
    batch_size_trigger: prom.Counter
    batch_timeout_trigger: prom.Counter

    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.received_bytes = prom.Counter(
            "otlp_agent_received_bytes",
            "Request bytes accepted, after decompression.",
            ["signal", "transport"],
            registry=r,
        )
        refused_items = prom.Counter(
            "otlp_agent_refused_items",
            "Items refused to clients, by reason.",
            ["signal", "transport", "reason"],
            registry=r,
        )
        collector_metrics.receiver_metrics(self, r, refused_items)
        self.refused_requests = prom.Counter(
            "otlp_agent_refused_requests",
            "Requests refused, by reason.",
            ["signal", "transport", "reason"],
            registry=r,
        )
        failed_items = prom.Counter(
            "otlp_agent_failed_items",
            "Items the backend rejected or never took, by reason.",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        collector_metrics.exporter_metrics(self, r, failed_items)
        self.dropped_items = prom.Counter(
            "otlp_agent_dropped_items",
            "Items dropped inside the agent, by reason.",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        self.retries = prom.Counter(
            "otlp_agent_export_retries", "Export retries.", ["exporter", "signal"], registry=r
        )
        self.uncompressed_bytes = prom.Counter(
            "otlp_agent_export_uncompressed_bytes",
            "Bytes exported before compression.",
            ["exporter"],
            registry=r,
        )
        self.wire_bytes = prom.Counter(
            "otlp_agent_export_wire_bytes", "Bytes exported after compression.", ["exporter"], registry=r
        )
        self.queue_batches = prom.Gauge(
            "otlp_agent_queue_batches", "Batches queued.", ["exporter"], registry=r
        )
        self.queue_items = prom.Gauge("otlp_agent_queue_items", "Items queued.", ["exporter"], registry=r)
        self.queue_capacity_items = prom.Gauge(
            "otlp_agent_queue_capacity_items",
            "Capacity of the queue in items (queue.maxItems).",
            ["exporter"],
            registry=r,
        )
        self.routed_items = prom.Counter(
            "otlp_agent_routed_items",
            "Items sent on by each route (rule name, or _default for the default exporters).",
            ["route", "signal"],
            registry=r,
        )
        self.unrouted_items = prom.Counter(
            "otlp_agent_unrouted_items",
            "Items no route took and with no default route: reported to clients as partial success.",
            ["signal"],
            registry=r,
        )
        self.deduplicated_items = prom.Counter(
            "otlp_agent_deduplicated_items",
            "Items of a request sent again that this exporter already held from an earlier attempt (its "
            "part was accepted while another exporter refused): not taken twice.",
            ["exporter", "signal"],
            registry=r,
        )
        self.memory_held = prom.Gauge(
            "otlp_agent_memory_held_bytes", "Bytes held (memory limiter).", registry=r
        )
        self.export_latency = prom.Histogram(
            "otlp_agent_export_latency_seconds",
            "Time per export attempt.",
            ["exporter", "signal", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self.compression_ratio = prom.Gauge(
            "otlp_agent_export_compression_ratio",
            "Bytes before compression per byte sent, over the exporter's lifetime.",
            ["exporter"],
            registry=r,
        )
        self._reliability_metrics(r)
        self._processor_metrics(r)
        self._transport_metrics(r)
        self._scaling_metrics(r)
        collector_metrics.processor_metrics(self, r)
        self._batch_children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}
        process_metrics.register(r)
        r.register(_NativeLogLines())

    def _reliability_metrics(self, r: prom.CollectorRegistry) -> None:
        self.circuit_state = prom.Gauge(
            "otlp_agent_exporter_circuit_state",
            "Circuit breaker: 0 closed, 1 open (not sending), 2 half-open (probing).",
            ["exporter"],
            registry=r,
        )
        self.endpoint_active = prom.Gauge(
            "otlp_agent_exporter_endpoint_active",
            "1 for the endpoint the exporter sends to now, 0 for its other failover endpoints.",
            ["exporter", "endpoint"],
            registry=r,
        )
        self.failovers = prom.Counter(
            "otlp_agent_exporter_failovers",
            "Switches to the next failover endpoint.",
            ["exporter"],
            registry=r,
        )
        self.requeued_batches = prom.Counter(
            "otlp_agent_export_requeued_batches",
            "Batches put back at the end of their queue after retry.maxElapsed (delivery durable / endToEnd "
            "never give data up by time).",
            ["exporter", "signal"],
            registry=r,
        )
        self.queue_recovered = prom.Counter(
            "otlp_agent_queue_recovered_batches",
            "Batches found in a persistent queue at start (left by an earlier run; may be resent twice).",
            ["exporter"],
            registry=r,
        )
        self.queue_orphaned = prom.Gauge(
            "otlp_agent_queue_orphaned_items",
            "Items in a persistent queue file no configured exporter opens (exporter renamed or removed).",
            ["file"],
            registry=r,
        )
        self.queue_corrupt = prom.Counter(
            "otlp_agent_queue_corrupt_batches",
            "Unreadable persistent-queue rows, skipped and deleted.",
            ["exporter"],
            registry=r,
        )
        self.reloads = prom.Counter(
            "otlp_agent_config_reloads", "Config file changes, by outcome.", ["outcome"], registry=r
        )
        self.reload_late_requests = prom.Counter(
            "otlp_agent_config_reload_late_requests",
            "Requests still being accepted by the old pipeline when a reload stopped waiting for them.",
            registry=r,
        )

    def _processor_metrics(self, r: prom.CollectorRegistry) -> None:
        self.processor_filtered = prom.Counter(
            "otlp_agent_processor_filtered_items",
            "Items (spans, log records, data points) dropped by each filter rule: the user's choice, never "
            "reported to clients as rejected.",
            ["rule", "signal"],
            registry=r,
        )
        self.processor_sampled = prom.Counter(
            "otlp_agent_processor_sampled_items",
            "Items the sampler decided on: kept, dropped, or no_randomness (dropped: no trace id or rv).",
            ["signal", "decision"],
            registry=r,
        )
        self.processor_redacted = prom.Counter(
            "otlp_agent_processor_redacted_values",
            "Attribute values redacted, by processor (resource, attributes) and action index.",
            ["processor", "action", "signal"],
            registry=r,
        )

    def _transport_metrics(self, r: prom.CollectorRegistry) -> None:
        """compression auto, connection pools, payload-too-large splitting, adaptive batching."""
        self.compression_chosen = prom.Gauge(
            "otlp_agent_exporter_compression_chosen",
            "compression auto: 1 for the codec the exporter sends with now, 0 for its other candidates.",
            ["exporter", "codec"],
            registry=r,
        )
        self.compression_measured_ratio = prom.Gauge(
            "otlp_agent_exporter_compression_measured_ratio",
            "compression auto: bytes before per byte after compression, measured on samples of live batches.",
            ["exporter", "codec"],
            registry=r,
        )
        self.compression_measured_cpu = prom.Gauge(
            "otlp_agent_exporter_compression_measured_cpu_seconds_per_mib",
            "compression auto: CPU seconds to compress one MiB, measured on samples of live batches.",
            ["exporter", "codec"],
            registry=r,
        )
        self.compression_refused = prom.Counter(
            "otlp_agent_exporter_compression_refused",
            "compression auto: batches refused for their encoding (then sent with the next best).",
            ["exporter", "codec"],
            registry=r,
        )
        self.pool_open = prom.Gauge(
            "otlp_agent_exporter_connections_open",
            "Connections (HTTP) or channels (gRPC) the exporter holds open now.",
            ["exporter"],
            registry=r,
        )
        self.pool_in_flight = prom.Gauge(
            "otlp_agent_exporter_connection_in_flight",
            "Requests in flight on each connection of the exporter's pool.",
            ["exporter", "connection"],
            registry=r,
        )
        self.pool_connections = prom.Counter(
            "otlp_agent_exporter_connections",
            "Connections opened, and closed after idleTimeout (recycled).",
            ["exporter", "event"],
            registry=r,
        )
        self.too_large_refusals = prom.Counter(
            "otlp_agent_exporter_too_large_refusals",
            "Batches (or parts) the backend refused for their size; each is split and sent again in parts.",
            ["exporter"],
            registry=r,
        )
        self.batch_bytes_cap = prom.Gauge(
            "otlp_agent_exporter_batch_bytes_cap",
            "Batch bytes (uncompressed) the exporter learned its backend takes: batches are capped to it.",
            ["exporter"],
            registry=r,
        )
        self.websocket_connections = prom.Gauge(
            "otlp_agent_websocket_connections", "Open OTLP WebSocket connections.", registry=r
        )
        self.websocket_refused_connections = prom.Counter(
            "otlp_agent_websocket_refused_connections",
            "WebSocket connections refused at the upgrade (origin, unauthenticated, too_many_connections).",
            ["reason"],
            registry=r,
        )
        self.websocket_closed = prom.Counter(
            "otlp_agent_websocket_closed_connections",
            "WebSocket connections closed, by why: client, idle, too_slow (a message not complete within "
            "readTimeout), too_large (a message over maxBodySize), unauthenticated (its token no longer "
            "valid).",
            ["reason"],
            registry=r,
        )
        self.batch_timeout = prom.Gauge(
            "otlp_agent_batch_timeout_seconds",
            "With batch timeout auto: how long the exporter's next partial batch may wait.",
            ["exporter"],
            registry=r,
        )
        self.pool_wait = prom.Histogram(
            "otlp_agent_exporter_connection_wait_seconds",
            "Time an export waited for a connection with room (every connection at maxInFlight).",
            ["exporter"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def _scaling_metrics(self, r: prom.CollectorRegistry) -> None:
        """The config the agent runs (hot reload), and load balancing over a target's pods."""
        self.config_info = prom.Gauge(
            "otlp_agent_config_info",
            "1 for the SHA-256 of the config file the agent runs (what the operator compares).",
            ["sha256"],
            registry=r,
        )
        self._config_running: str | None = None
        self.lb_endpoints = prom.Gauge(
            "otlp_agent_loadbalancer_endpoints",
            "Addresses a load-balancing exporter balances over now (resolved, not held back).",
            ["exporter"],
            registry=r,
        )
        self.lb_items = prom.Counter(
            "otlp_agent_loadbalancer_items",
            "Items each address accepted.",
            ["exporter", "endpoint", "signal"],
            registry=r,
        )
        self.lb_failures = prom.Counter(
            "otlp_agent_loadbalancer_failed_requests",
            "Requests to an address that failed (retryable: its share goes to the others for a while).",
            ["exporter", "endpoint", "retryable"],
            registry=r,
        )
        self.lb_resolutions = prom.Counter(
            "otlp_agent_loadbalancer_resolutions",
            "Host name resolutions: changed (the address set moved), unchanged, failed (the last set kept).",
            ["exporter", "outcome"],
            registry=r,
        )
        self.lb_split_batches = prom.Counter(
            "otlp_agent_loadbalancer_split_batches",
            "Batches whose items went to several addresses (cut at the wire level).",
            ["exporter"],
            registry=r,
        )

    def config_running(self, sha256: str | None) -> None:
        """`otlp_agent_config_info`: one series, for the config running now."""
        if self._config_running is not None:
            self.config_info.remove(self._config_running)
        self._config_running = sha256
        if sha256 is not None:
            self.config_info.labels(sha256).set(1)

    def forget_endpoint(self, exporter: str, endpoint: str) -> None:
        """An address left the exporter's set: drop its series (pod addresses come and go)."""
        for metric, extra in (
            (self.lb_items, [[s] for s in ("traces", "metrics", "logs")]),
            (self.lb_failures, [["true"], ["false"]]),
        ):
            for rest in extra:
                with contextlib.suppress(KeyError):
                    metric.remove(exporter, endpoint, *rest)

    def batch_sent(self, exporter: str, signal: str, items: int, size: int, trigger: str) -> None:
        """A batch handed to `exporter`'s queue (the batch processor's metrics); `trigger`: size, timeout
        or flush (shutdown, reload)."""
        children = self._batch_children.get((exporter, signal))
        if children is None:
            labels = (collector_metrics.BATCH_PROCESSOR, exporter, signal)
            children = self._batch_children[(exporter, signal)] = (
                self.batch_items.labels(*labels),
                self.batch_bytes.labels(*labels),
                self.batch_size_trigger.labels(*labels),
                self.batch_timeout_trigger.labels(*labels),
            )
        sizes, sizes_bytes, by_size, by_timeout = children
        sizes.observe(items)
        sizes_bytes.observe(size)
        if trigger == "size":
            by_size.inc()
        elif trigger == "timeout":
            by_timeout.inc()

    def exposition(self) -> bytes:
        return bytes(prom.generate_latest(self.registry))

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent): for `make run`'s summary and for tests."""
        return self.registry.get_sample_value(name, labels) or 0.0


class _NativeLogLines(prom_registry.Collector):
    """Lines C libraries (grpc core) wrote to stderr: logged rate-limited, all counted here."""

    def collect(self) -> Iterator[prom_core.Metric]:
        yield prom_core.CounterMetricFamily(
            "otlp_agent_native_log_lines",
            "Lines C libraries (grpc core) wrote to stderr, routed into the JSON log (rate-limited).",
            value=logs.native_lines(),
        )
