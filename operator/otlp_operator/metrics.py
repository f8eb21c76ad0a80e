"""The operator's own Prometheus metrics, served at `/metrics` on the probe port (`edge.health`).

One registry per operator (kopf's memo holds it; tests run several operators in one process). Every name
is `otlp_operator_*`, plus prometheus_client's `process_*` (RSS, CPU, open file descriptors, start time);
docs/operations.md lists them with their labels:

- build info (the release), reconciles (count, duration, errors by reason: the Degraded reason it left,
  or `ApiError`), pipelines by condition (counted at scrape time from each pipeline's last status);
- admission reviews by webhook and outcome, with their latency; injections by result and reason;
- failed API calls of the operator's own client, by method and HTTP status (`0`: not reached).

Only the replica that handles pipelines (kopf peering) reconciles, so the reconcile metrics and
`otlp_operator_pipelines` come from it (the others show none); every ready replica serves webhooks.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterator, MutableMapping
from typing import Any

import prometheus_client as prom
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# No `<counter>_created` series (prometheus_client's default): the collector serves none, and they double the
# series a scrape returns. Process-wide, like the agent's.
prom.disable_created_metrics()  # type: ignore[no-untyped-call]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Degraded reasons that count as a failed reconcile (every one the status module sets).
DEGRADED_AS_ERRORS = (
    "InvalidSpec",
    "ReferenceUnresolved",
    "ApplyFailed",
    "ChildConflict",
    "ProgressDeadlineExceeded",
)


class _Pipelines(Collector):
    """`otlp_operator_pipelines`: counted at scrape time from the last status of each pipeline."""

    def __init__(self, conditions: dict[Any, dict[str, str]]) -> None:
        self._conditions = conditions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "otlp_operator_pipelines",
            "Pipelines by condition and status, as last reconciled by this replica.",
            labels=["condition", "status"],
        )
        counts: dict[tuple[str, str], int] = {}
        for conditions in self._conditions.values():
            for condition, status in conditions.items():
                counts[(condition, status)] = counts.get((condition, status), 0) + 1
        for (condition, status), count in sorted(counts.items()):
            family.add_metric([condition, status], count)
        yield family


def _release() -> str:
    try:
        return importlib.metadata.version("otlp-operator")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


#: Where the operator's metrics live in kopf's memo (`of`).
MEMO_KEY = "metrics"


class OperatorMetrics:
    """Every metric the operator exports on /metrics."""

    def __init__(self, version: str | None = None) -> None:
        version = version or _release()
        self.registry = prom.CollectorRegistry()
        r = self.registry
        prom.ProcessCollector(registry=r)
        info = prom.Gauge(
            "otlp_operator_build_info",
            "1, labelled with this operator's version.",
            ["version", "python"],
            registry=r,
        )
        info.labels(version, platform.python_version()).set(1)
        self.reconciles = prom.Counter("otlp_operator_reconciles", "Reconciles of a pipeline.", registry=r)
        self.reconcile_duration = prom.Histogram(
            "otlp_operator_reconcile_duration_seconds",
            "Time per reconcile, API calls included.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = prom.Counter(
            "otlp_operator_reconcile_errors",
            "Reconciles that left the pipeline Degraded, or failed on an API error, by reason.",
            ["reason"],
            registry=r,
        )
        self.webhook_requests = prom.Counter(
            "otlp_operator_webhook_requests",
            "Admission reviews by webhook and outcome.",
            ["webhook", "outcome"],
            registry=r,
        )
        self.webhook_duration = prom.Histogram(
            "otlp_operator_webhook_duration_seconds",
            "Time to answer an admission review.",
            ["webhook", "outcome"],
            buckets=_WEBHOOK_BUCKETS,
            registry=r,
        )
        self.injections = prom.Counter(
            "otlp_operator_injections",
            "Pods that asked for an agent: injected, or skipped (with the reason the Event gives).",
            ["result", "reason"],
            registry=r,
        )
        self.events_dropped = prom.Counter(
            "otlp_operator_events_dropped",
            "Warning Events about pods left without an agent that were not posted (too many at once), by "
            "reason.",
            ["reason"],
            registry=r,
        )
        self.api_errors = prom.Counter(
            "otlp_operator_api_errors",
            "Failed Kubernetes API calls by method and HTTP status (0: the server was not reached).",
            ["method", "code"],
            registry=r,
        )
        self._conditions: dict[Any, dict[str, str]] = {}
        r.register(_Pipelines(self._conditions))

    def reconciled(self, key: Any, seconds: float, status: dict[str, Any] | None) -> None:
        """A reconcile of pipeline `key` took `seconds` and wrote `status` (None: it failed on the API)."""
        self.reconciles.inc()
        self.reconcile_duration.observe(seconds)
        if status is None:
            self.reconcile_errors.labels("ApiError").inc()
            return
        conditions = {str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []}
        self._conditions[key] = conditions
        degraded: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Degraded"), {}
        )
        if degraded.get("status") == "True" and degraded.get("reason") in DEGRADED_AS_ERRORS:
            self.reconcile_errors.labels(str(degraded["reason"])).inc()

    def forget(self, key: Any) -> None:
        """Pipeline `key` is gone: it no longer counts in `otlp_operator_pipelines`."""
        self._conditions.pop(key, None)

    def webhook_answered(self, webhook: str, outcome: str, seconds: float) -> None:
        self.webhook_requests.labels(webhook, outcome).inc()
        self.webhook_duration.labels(webhook, outcome).observe(seconds)

    def injection(self, result: str, reason: str) -> None:
        self.injections.labels(result, reason).inc()

    def event_dropped(self, reason: str) -> None:
        self.events_dropped.labels(reason).inc()

    def api_error(self, method: str, code: int) -> None:
        """A failed API call (called from the client's threads too: prometheus_client is thread-safe)."""
        self.api_errors.labels(method, str(code)).inc()

    def exposition(self) -> bytes:
        return bytes(prom.generate_latest(self.registry))

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent): for tests."""
        return self.registry.get_sample_value(name, labels) or 0.0


def of(memo: MutableMapping[Any, Any]) -> OperatorMetrics:
    """The operator's metrics in kopf's memo (made by the first startup handler that asks)."""
    found = memo.get(MEMO_KEY)
    if not isinstance(found, OperatorMetrics):
        found = memo[MEMO_KEY] = OperatorMetrics()
    return found
