"""What happens between receiving and exporting: memory limit, batching, attribute processors, sampling,
Kubernetes enrichment."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from otlp_agent.api.spec.common import MAX_MESSAGE_HARD_CAP, ByteSize, Duration, MiB, SpecModel
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
}
#: `k8sAttributes.overwrite` when unset: a sidecar stamps the pod's identity over what the app says.
K8S_OVERWRITTEN_BY_DEFAULT: dict[Mode, tuple[str, ...]] = {
    Mode.sidecar: (K8S_NAMESPACE, K8S_POD, K8S_POD_UID, K8S_NODE),
    Mode.daemonset: (),
    Mode.deployment: (),
}


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
    timeout: Duration = Field(default=0.2, ge=0.001, le=60, description="Longest a partial batch waits.")


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
    resource: AttributeProcessor | None = Field(default=None, description="Actions on resource attributes.")
    attributes: AttributeProcessor | None = Field(
        default=None, description="Actions on span, data point and log record attributes."
    )
    sampling: Sampling | None = Field(default=None, description="Trace sampling.")
    k8s_attributes: K8sAttributes | None = Field(
        default=None, alias="k8sAttributes", description="Kubernetes metadata enrichment."
    )
