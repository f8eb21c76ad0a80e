"""What happens between receiving and exporting: memory limit, batching, Kubernetes enrichment, and the
processors (resource, filter, sampling, attributes; conditions in `conditions`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import pydantic
from pydantic import Field

from otlp_agent.api import units
from otlp_agent.api.spec.common import (
    MAX_MESSAGE_HARD_CAP,
    PRESENCE_MATTERS,
    ByteSize,
    DnsLabel,
    Duration,
    MiB,
    Signal,
    SpecModel,
)
from otlp_agent.api.spec.conditions import MAX_PATTERN, Match
from otlp_agent.api.spec.workload import Mode

K8S_NAMESPACE, K8S_POD, K8S_POD_UID, K8S_NODE = (
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.node.name",
)
K8S_CLUSTER = "k8s.cluster.name"
#: What an agent knows to be true of the data it receives, per mode: (attribute, downward-API variable the
#: operator sets on the agent container). A sidecar shares the app's pod; a node agent only its node (apps
#: reach their own node's agent); a gateway receives from anywhere. k8s.cluster.name comes from the spec.
K8S_ATTRIBUTES_FROM_ENV: dict[Mode, tuple[tuple[str, str], ...]] = {
    Mode.sidecar: (
        (K8S_NAMESPACE, "OTLP_AGENT_POD_NAMESPACE"),
        (K8S_POD, "OTLP_AGENT_POD_NAME"),
        (K8S_POD_UID, "OTLP_AGENT_POD_UID"),
        (K8S_NODE, "OTLP_AGENT_NODE_NAME"),
    ),
    Mode.daemonset: ((K8S_NODE, "OTLP_AGENT_NODE_NAME"),),
    Mode.deployment: (),
    Mode.statefulset: (),
}
#: `k8sAttributes.overwrite` when unset: a sidecar stamps the pod's identity over what the app says.
K8S_OVERWRITTEN_BY_DEFAULT: dict[Mode, tuple[str, ...]] = {
    Mode.sidecar: (K8S_NAMESPACE, K8S_POD, K8S_POD_UID, K8S_NODE),
    Mode.daemonset: (),
    Mode.deployment: (),
    Mode.statefulset: (),
}

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
    pydantic.WithJsonSchema({"type": "string", "pattern": f"^auto$|{units.DURATION_PATTERN}"}),
]


class MemoryLimiter(SpecModel):
    """Bounds the bytes the agent holds (batches, queues, requests in flight)."""

    limit: ByteSize = Field(
        default=256 * MiB,
        ge=MiB,
        le=64 * 1024 * MiB,
        description="Hard limit on bytes held. The agent's container needs 256Mi of memory beyond it "
        "(the operator warns when its memory limit leaves less).",
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
        default=None,
        ge=0.001,
        le=60,
        description="With timeout auto: the shortest wait, at low load (1ms to 1m; default 20ms).",
    )
    max_timeout: Duration | None = Field(
        default=None,
        ge=0.001,
        le=60,
        description="With timeout auto: the longest wait, when the backend is slow or the queue grows "
        "(1ms to 1m; default 1s).",
    )

    @property
    def timeout_bounds(self) -> tuple[float, float]:
        """(shortest, longest) wait with timeout auto, defaults applied."""
        low = self.min_timeout if self.min_timeout is not None else AUTO_MIN_TIMEOUT
        high = self.max_timeout if self.max_timeout is not None else AUTO_MAX_TIMEOUT
        return low, high


class AttributeActionType(StrEnum):
    insert = "insert"
    update = "update"
    upsert = "upsert"
    delete = "delete"
    hash = "hash"
    redact = "redact"


class AttributeAction(SpecModel):
    """One change to attributes.

    insert (only where the key is missing), update (only where present), upsert (both): set `key` to `value`
    or to the value of `fromAttribute`. delete: remove. hash: replace the value with the lowercase hex
    SHA-256 of its encoding (see docs/agent.md). redact: replace every match of `regex` in string values
    with `replacement`. Select attributes by `key` or (delete, hash, redact) by `keyRegex`.
    """

    key: str | None = Field(default=None, min_length=1, max_length=256, description="Attribute key.")
    key_regex: str | None = Field(
        default=None,
        max_length=MAX_PATTERN,
        description="RE2 pattern that must match the whole key (delete, hash, redact).",
    )
    action: AttributeActionType = Field(description="insert | update | upsert | delete | hash | redact.")
    value: str | None = Field(
        default=None, max_length=4096, description="String value for insert, update and upsert."
    )
    from_attribute: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="insert, update, upsert: copy the value of this attribute of the same item instead.",
    )
    regex: str | None = Field(
        default=None, max_length=MAX_PATTERN, description="redact: RE2 pattern of what to replace in values."
    )
    replacement: str = Field(
        default="****",
        max_length=256,
        description="redact: what replaces each match (default ****).",
        json_schema_extra=PRESENCE_MATTERS,
    )
    signals: list[Signal] | None = Field(
        default=None,
        max_length=3,
        description="Signals this action applies to (default: every signal its match can apply to).",
    )
    match: Match | None = Field(
        default=None, description="Only items this matches (resource actions: resource conditions only)."
    )


class AttributeProcessor(SpecModel):
    """Ordered attribute actions."""

    actions: list[AttributeAction] = Field(min_length=1, max_length=64, description="Applied in order.")


class FilterRule(Match):
    """Drops what matches: whole resources, scopes, items (spans, log records, metrics) or data points —
    the deepest level its conditions name (see docs/agent.md)."""

    name: DnsLabel = Field(description="Rule name, used in metrics.")
    signals: list[Signal] | None = Field(
        default=None,
        max_length=3,
        description="Signals this rule applies to (default: every signal all its conditions apply to).",
    )


class Filter(SpecModel):
    """Rules that drop data; a rule drops what it matches, so rules are OR-ed."""

    rules: list[FilterRule] = Field(min_length=1, max_length=64, description="Filter rules; names unique.")


class SamplingMode(StrEnum):
    proportional = "proportional"
    equalizing = "equalizing"


class Sampling(SpecModel):
    """Consistent probability sampling (OpenTelemetry tracestate `th`/`rv`): the same trace is kept or dropped
    by every agent, and by SDKs sampling at the same ratio."""

    ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Fraction of traces kept (1: all).")
    mode: SamplingMode = Field(
        default=SamplingMode.proportional,
        description="proportional: keep `ratio` of what arrives; equalizing: bring every span down to "
        "`ratio` overall, counting what upstream samplers already dropped.",
    )
    precision: int = Field(default=4, ge=1, le=14, description="Hex digits of the threshold written to th.")
    signals: list[Signal] = Field(
        default_factory=lambda: [Signal.traces],
        min_length=1,
        max_length=2,
        description="traces and/or logs (log records by trace id).",
    )
    hash_seed: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="Seed of the hash that gives log records without a trace id their randomness; agents "
        "with the same seed decide alike.",
    )


class K8sAttributes(SpecModel):
    """Sets k8s.* resource attributes, only those true where the agent runs: sidecar sets namespace, pod,
    pod uid, node and cluster; daemonset node and cluster; deployment cluster only. Added where missing;
    the attributes in `overwrite` replace what the client sent."""

    cluster_name: str | None = Field(
        default=None, max_length=253, description="Value of k8s.cluster.name (unset: not added)."
    )
    overwrite: list[str] | None = Field(
        default=None,
        max_length=5,
        description="Attributes set to the agent's value even when the data already has one, so clients "
        "cannot fake them (routes may trust them). Unset: k8s.namespace.name, k8s.pod.name, k8s.pod.uid "
        "and k8s.node.name in sidecar mode, none in other modes; []: none.",
    )

    def overwritten(self, mode: Mode) -> tuple[str, ...]:
        """The attributes stamped over the client's values in `mode`."""
        return K8S_OVERWRITTEN_BY_DEFAULT[mode] if self.overwrite is None else tuple(self.overwrite)


class Processors(SpecModel):
    """What happens between receiving and exporting."""

    memory_limiter: MemoryLimiter = Field(default_factory=MemoryLimiter, description="Memory bound.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Batching, applied per exporter.")
    resource: AttributeProcessor | None = Field(
        default=None, description="Actions on resource attributes (run first)."
    )
    filter: Filter | None = Field(default=None, description="Rules that drop data (after resource).")
    sampling: Sampling | None = Field(
        default=None, description="Probability sampling of traces and logs (after filter)."
    )
    attributes: AttributeProcessor | None = Field(
        default=None,
        description="Actions on span, span event, log record and data point attributes (run last).",
    )
    k8s_attributes: K8sAttributes | None = Field(
        default=None, alias="k8sAttributes", description="Kubernetes metadata enrichment."
    )
