"""The metrics the agent shares with the OpenTelemetry Collector, under the collector's names, units and
label keys (its receiverhelper, exporterhelper, processorhelper and batch processor internal telemetry, as
its Prometheus endpoint shows them: counters end in `_total`), so a dashboard built for collectors works
unchanged. The collector splits some counters by signal in the name (`otelcol_receiver_accepted_spans`,
`..._metric_points`, `..._log_records`); the agent's code counts with a `signal` label value, and `Split`
turns one into the other.

- `otelcol_receiver_accepted_{spans,metric_points,log_records}_total{receiver, transport}`: items accepted
  from clients (`receiver` is `otlp`; `transport` `grpc`, `http` or `websocket`); `..._refused_*`: items
  refused (their reasons: `otlp_agent_refused_items_total`).
- `otelcol_exporter_sent_*_total{exporter}`: items the backend accepted; `..._send_failed_*`: items lost to
  it (reasons: `otlp_agent_failed_items_total`); `..._enqueue_failed_*`: items its full queue refused.
- `otelcol_exporter_queue_size` / `_capacity{exporter}`: bytes queued and `queue.maxBytes` (a collector
  queue with `sizer: bytes`; one queue per exporter carries every signal, so there is no `data_type`).
- `otelcol_processor_incoming_items_total` / `_outgoing_items_total{processor, otel_signal}`: items into
  and out of each configured processor.
- `otelcol_processor_batch_batch_send_size` / `_send_size_bytes` (histograms),
  `..._batch_size_trigger_send_total`, `..._timeout_trigger_send_total{processor, exporter, signal}`:
  batches handed to each exporter's queue (`processor` is `batch`; exporter and signal are the agent's).
"""

from __future__ import annotations

from typing import Any

import prometheus_client as prom

#: The collector's word for each signal's items, in metric names.
ITEMS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
RECEIVER = "otlp"
BATCH_PROCESSOR = "batch"
# The collector's own buckets for otelcol_processor_batch_batch_send_size (items per batch).
SEND_SIZE_BUCKETS = (
    *(10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000),
    *(9000, 10000, 20000, 30000, 50000, 100000),
)
SEND_BYTES_BUCKETS = tuple(1024 * 4**power for power in range(9))  # 1 KiB .. 64 MiB


def per_signal(
    pattern: str, description: str, labels: list[str], registry: prom.CollectorRegistry
) -> dict[str, prom.Counter]:
    """One counter per signal, `pattern` naming it ("otelcol_exporter_sent_{items}")."""
    return {
        signal: prom.Counter(
            pattern.format(items=items),
            description.format(items=items.replace("_", " ")),
            labels,
            registry=registry,
        )
        for signal, items in ITEMS.items()
    }


class Split:
    """Counters per signal behind the agent's `labels(...)` calls: the value at `signal_at` picks the
    counter, the others become its labels after `fixed` ones. Children are cached (label values come from
    the code and the spec, so the cache stays small), which makes a call cheaper than prometheus_client's
    own `labels()`."""

    def __init__(
        self, counters: dict[str, prom.Counter], signal_at: int, fixed: tuple[str, ...] = ()
    ) -> None:
        self._counters = counters
        self._signal_at = signal_at
        self._fixed = fixed
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            rest = values[: self._signal_at] + values[self._signal_at + 1 :]
            child = self._children[values] = self._counters[values[self._signal_at]].labels(
                *self._fixed, *rest
            )
        return child


class _Pair:
    """Two counter children incremented together."""

    def __init__(self, first: Any, second: Any) -> None:
        self._first, self._second = first, second

    def inc(self, amount: float = 1) -> None:
        self._first.inc(amount)
        self._second.inc(amount)


class Both:
    """A collector counter (by signal, without the agent's extra labels) and the agent's own counter with
    them (`reason`), behind one `labels(...)` call: what refusals and failures increment."""

    def __init__(self, collector: Split, own: prom.Counter) -> None:
        self._collector, self._own = collector, own
        self._children: dict[tuple[str, ...], _Pair] = {}

    def labels(self, *values: str) -> _Pair:
        pair = self._children.get(values)
        if pair is None:  # the agent's last label (reason) is its own
            pair = self._children[values] = _Pair(
                self._collector.labels(*values[:-1]), self._own.labels(*values)
            )
        return pair


def receiver_metrics(agent: Any, r: prom.CollectorRegistry, refused_items: prom.Counter) -> None:
    """`agent.received_items` / `refused_items`: labels (signal, transport[, reason])."""
    accepted = per_signal(
        "otelcol_receiver_accepted_{items}",
        "Number of {items} successfully pushed into the pipeline.",
        ["receiver", "transport"],
        r,
    )
    refused = per_signal(
        "otelcol_receiver_refused_{items}",
        "Number of {items} that could not be pushed into the pipeline.",
        ["receiver", "transport"],
        r,
    )
    agent.received_items = Split(accepted, 0, (RECEIVER,))
    agent.refused_items = Both(Split(refused, 0, (RECEIVER,)), refused_items)


def exporter_metrics(agent: Any, r: prom.CollectorRegistry, failed_items: prom.Counter) -> None:
    """`agent.exported_items` / `failed_items` / `enqueue_failed`: labels (exporter, signal[, reason]);
    `agent.queue_bytes` / `queue_capacity`: (exporter)."""
    sent = per_signal(
        "otelcol_exporter_sent_{items}",
        "Number of {items} successfully sent to destination.",
        ["exporter"],
        r,
    )
    failed = per_signal(
        "otelcol_exporter_send_failed_{items}",
        "Number of {items} in failed attempts to send to destination (refused for good, or retries gave up).",
        ["exporter"],
        r,
    )
    enqueue_failed = per_signal(
        "otelcol_exporter_enqueue_failed_{items}",
        "Number of {items} failed to be added to the sending queue (it was full).",
        ["exporter"],
        r,
    )
    agent.exported_items = Split(sent, 1)
    agent.failed_items = Both(Split(failed, 1), failed_items)
    agent.enqueue_failed = Split(enqueue_failed, 1)
    agent.queue_bytes = prom.Gauge(
        "otelcol_exporter_queue_size", "Current size of the queue, in bytes.", ["exporter"], registry=r
    )
    agent.queue_capacity = prom.Gauge(
        "otelcol_exporter_queue_capacity",
        "Capacity of the queue, in bytes (queue.maxBytes).",
        ["exporter"],
        registry=r,
    )


def processor_metrics(agent: Any, r: prom.CollectorRegistry) -> None:
    """`agent.processor_incoming` / `processor_outgoing`: labels (processor, otel_signal); the batch
    processor's histograms and triggers: labels (processor, exporter, signal)."""
    agent.processor_incoming = prom.Counter(
        "otelcol_processor_incoming_items",
        "Number of items passed to the processor.",
        ["processor", "otel_signal"],
        registry=r,
    )
    agent.processor_outgoing = prom.Counter(
        "otelcol_processor_outgoing_items",
        "Number of items emitted from the processor.",
        ["processor", "otel_signal"],
        registry=r,
    )
    batch = ["processor", "exporter", "signal"]
    agent.batch_items = prom.Histogram(
        "otelcol_processor_batch_batch_send_size",
        "Number of units in the batch.",
        batch,
        buckets=SEND_SIZE_BUCKETS,
        registry=r,
    )
    agent.batch_bytes = prom.Histogram(
        "otelcol_processor_batch_batch_send_size_bytes",
        "Number of bytes in batch that was sent (before compression).",
        batch,
        buckets=SEND_BYTES_BUCKETS,
        registry=r,
    )
    agent.batch_size_trigger = prom.Counter(
        "otelcol_processor_batch_batch_size_trigger_send",
        "Number of times the batch was sent due to a size trigger.",
        batch,
        registry=r,
    )
    agent.batch_timeout_trigger = prom.Counter(
        "otelcol_processor_batch_timeout_trigger_send",
        "Number of times the batch was sent due to a timeout trigger.",
        batch,
        registry=r,
    )
