"""What happens between receiving and exporting: memory limit, batching, attribute processors, sampling,
Kubernetes enrichment."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import pydantic
from pydantic import Field

from otlp_agent.api import units
from otlp_agent.api.spec.common import MAX_MESSAGE_HARD_CAP, ByteSize, Duration, MiB, SpecModel

AUTO = "auto"
AUTO_MIN_TIMEOUT = 0.02
AUTO_MAX_TIMEOUT = 1.0
_TIMEOUT_RANGE = (0.001, 60.0)


def _timeout_or_auto(value: object) -> object:
    if value == AUTO:
        return value
    seconds = units.parse_duration(value)
    low, high = _TIMEOUT_RANGE
    if isinstance(seconds, float) and seconds < low:
        raise ValueError(f"must be at least {units.format_duration(low)}")
    if isinstance(seconds, float) and seconds > high:
        raise ValueError(f"must be at most {units.format_duration(high)}")
    return seconds


def _format_timeout(value: float | str) -> str:
    return value if isinstance(value, str) else units.format_duration(value)


# A duration, or "auto" (the batcher adapts it between minTimeout and maxTimeout).
DurationOrAuto = Annotated[
    float | Literal["auto"],
    pydantic.BeforeValidator(_timeout_or_auto),
    pydantic.PlainSerializer(_format_timeout, when_used="json"),
    pydantic.WithJsonSchema({"type": "string", "pattern": r"^auto$|^\d+(\.\d+)?(ms|s|m|h)$"}),
]


class MemoryLimiter(SpecModel):
    """Bounds the bytes the agent holds (batches, queues, requests in flight)."""

    limit: ByteSize = Field(
        default=256 * MiB,
        ge=MiB,
        le=64 * 1024 * MiB,
        description="Hard limit on bytes held. Keep it well under the container's memory limit.",
    )
    spike_limit: ByteSize = Field(
        default=64 * MiB,
        ge=0,
        description="Headroom below the limit: above limit - spikeLimit, receivers refuse new data with a "
        "retryable status (gRPC UNAVAILABLE, HTTP 503) until exports free memory.",
    )


class BatchSettings(SpecModel):
    """Batching per exporter: a batch is sent when it reaches maxItems or maxBytes, or after timeout."""

    max_items: int = Field(default=8192, ge=1, le=1_000_000, description="Spans, data points or log records.")
    max_bytes: ByteSize = Field(
        default=4 * MiB, ge=1024, le=MAX_MESSAGE_HARD_CAP, description="Serialized bytes before compression."
    )
    timeout: DurationOrAuto = Field(
        default=0.2,
        description="Longest a partial batch waits (1ms to 1m), or auto: adapted per exporter between "
        "minTimeout and maxTimeout, longer while the exporter is busy, shorter while it is idle.",
    )
    min_timeout: Duration | None = Field(
        default=None, ge=0.001, le=60, description="With timeout auto: the shortest wait, at low load (20ms)."
    )
    max_timeout: Duration | None = Field(
        default=None,
        ge=0.001,
        le=60,
        description="With timeout auto: the longest wait, when the backend is slow or the queue grows (1s).",
    )

    @property
    def timeout_bounds(self) -> tuple[float, float]:
        """(shortest, longest) wait with timeout auto, defaults applied."""
        low = self.min_timeout if self.min_timeout is not None else AUTO_MIN_TIMEOUT
        high = self.max_timeout if self.max_timeout is not None else AUTO_MAX_TIMEOUT
        return low, high


class AttributeActionType(StrEnum):
    insert = "insert"
    upsert = "upsert"
    delete = "delete"
    hash = "hash"


class AttributeAction(SpecModel):
    """One change to attributes: insert (if missing), upsert, delete, or hash (SHA-256 of the value)."""

    key: str = Field(min_length=1, max_length=256, description="Attribute key.")
    action: AttributeActionType = Field(description="insert | upsert | delete | hash.")
    value: str | None = Field(default=None, max_length=4096, description="Value for insert and upsert.")


class AttributeProcessor(SpecModel):
    """Ordered attribute actions."""

    actions: list[AttributeAction] = Field(min_length=1, max_length=64, description="Applied in order.")


class Sampling(SpecModel):
    """Head sampling by trace id: the same trace is kept or dropped by every agent."""

    ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Fraction of traces kept.")


class K8sAttributes(SpecModel):
    """Adds k8s.* resource attributes where missing, only those true where the agent runs: sidecar adds
    namespace, pod, pod uid, node and cluster; daemonset node and cluster; deployment cluster only."""

    cluster_name: str | None = Field(
        default=None, max_length=253, description="Value of k8s.cluster.name (unset: not added)."
    )


class Processors(SpecModel):
    """What happens between receiving and exporting."""

    memory_limiter: MemoryLimiter = Field(default_factory=MemoryLimiter, description="Memory bound.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Batching, applied per exporter.")
    resource: AttributeProcessor | None = Field(default=None, description="Actions on resource attributes.")
    attributes: AttributeProcessor | None = Field(
        default=None, description="Actions on span, data point and log record attributes."
    )
    sampling: Sampling | None = Field(default=None, description="Trace sampling.")
    k8s_attributes: K8sAttributes | None = Field(
        default=None, alias="k8sAttributes", description="Kubernetes metadata enrichment."
    )
