"""The OTLPPipeline spec: the single source of truth for the API.

Every field has a description, a default and bounds. The CRD schema, the configuration reference and the
agent's and operator's validation are all derived from these models; cross-field rules (which need the
whole spec) live beside them in `spec_rules`. Field names are Python snake_case with camelCase aliases,
which is what users write in YAML.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from otlp_agent import units

API_GROUP = "telemetry.otlp-operator.io"
API_VERSION = "v1alpha1"
KIND = "OTLPPipeline"
PLURAL = "otlppipelines"
SHORT_NAME = "otlpp"

MiB = 1024 * 1024
#: Receivers never accept a message above this, whatever the spec says: it bounds one request's memory.
MAX_MESSAGE_HARD_CAP = 64 * MiB

# Sizes accept an integer or a Kubernetes quantity ("16Mi"); durations a Go-style string ("200ms").
ByteSize = Annotated[
    int,
    pydantic.BeforeValidator(units.parse_bytes),
    pydantic.PlainSerializer(units.format_bytes, when_used="json"),
    pydantic.WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
Duration = Annotated[
    float,
    pydantic.BeforeValidator(units.parse_duration),
    pydantic.PlainSerializer(units.format_duration, when_used="json"),
    pydantic.WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$"}),
]
Port = Annotated[int, Field(ge=1, le=65535)]
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=63)]


class SpecModel(BaseModel):
    """Base for every spec model: camelCase in YAML, unknown fields refused, immutable once loaded."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_enum_values=False
    )


class Mode(StrEnum):
    deployment = "deployment"
    daemonset = "daemonset"
    sidecar = "sidecar"


class Signal(StrEnum):
    traces = "traces"
    metrics = "metrics"
    logs = "logs"


class Protocol(StrEnum):
    grpc = "grpc"
    http_protobuf = "http/protobuf"
    http_json = "http/json"


class Compression(StrEnum):
    none = "none"
    gzip = "gzip"
    deflate = "deflate"
    zstd = "zstd"


class QueueType(StrEnum):
    memory = "memory"
    persistent = "persistent"


class WhenFull(StrEnum):
    refuse = "refuse"
    drop_oldest = "dropOldest"
    block = "block"


class Delivery(StrEnum):
    fast = "fast"
    durable = "durable"
    end_to_end = "endToEnd"


class SecretKeyRef(SpecModel):
    """A key of a Secret in the pipeline's namespace; the operator mounts it, nothing copies its value."""

    name: DnsLabel = Field(description="Name of the Secret.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key inside the Secret (letters, digits, '-', '_', '.'; as Kubernetes allows).",
    )

    @pydantic.field_validator("key")
    @classmethod
    def _not_a_path(cls, key: str) -> str:
        # The key becomes a file name under the mount: "." and ".." would escape it (RE2, used for CRD
        # patterns, has no lookahead, so this check lives here and the CRD pattern admits them).
        if key in (".", ".."):
            raise ValueError(f"{key!r} is not a valid Secret key")
        return key


class ResourceList(SpecModel):
    """CPU and memory quantities, as in a Kubernetes container."""

    cpu: str | None = Field(default=None, description='CPU quantity, e.g. "200m".')
    memory: str | None = Field(default=None, description='Memory quantity, e.g. "256Mi".')


class Resources(SpecModel):
    """Compute resources of the agent container."""

    requests: ResourceList = Field(
        default=ResourceList(cpu="100m", memory="128Mi"), description="Guaranteed resources."
    )
    limits: ResourceList = Field(default=ResourceList(memory="512Mi"), description="Upper bounds.")


class EnvVar(SpecModel):
    """An extra environment variable for the agent container."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=253, description="Variable name.")
    value: str = Field(default="", max_length=32768, description="Literal value.")


class Toleration(SpecModel):
    """A Kubernetes toleration, so node agents can run on tainted nodes."""

    key: str | None = Field(default=None, description="Taint key; empty with operator Exists matches all.")
    operator: str = Field(default="Equal", pattern=r"^(Equal|Exists)$", description="Equal or Exists.")
    value: str | None = Field(default=None, description="Taint value to match with Equal.")
    effect: str | None = Field(
        default=None,
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
        description="Taint effect to tolerate; empty means all effects.",
    )


class Autoscaling(SpecModel):
    """Horizontal autoscaling of a gateway (mode deployment) on CPU use."""

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest replicas.")
    max_replicas: int = Field(default=5, ge=1, le=100, description="Most replicas.")
    target_cpu_utilization: int = Field(
        default=70, ge=10, le=100, description="Average CPU use, in percent of requests, to aim for."
    )


class ServerTLS(SpecModel):
    """TLS for a receiver, from Secrets the operator mounts into the agent."""

    cert_secret: DnsLabel = Field(description="A kubernetes.io/tls Secret with tls.crt and tls.key.")
    client_ca_secret: SecretKeyRef | None = Field(
        default=None, description="CA bundle to verify client certificates against (enables mTLS)."
    )


class ReceiverAuth(SpecModel):
    """Bearer-token authentication for a receiver."""

    bearer_token_secret: SecretKeyRef = Field(description="Secret key holding the token clients must send.")


class GrpcReceiver(SpecModel):
    """The OTLP/gRPC receiver (TraceService, MetricsService, LogsService)."""

    enabled: bool = Field(default=True, description="Serve OTLP/gRPC.")
    port: Port = Field(default=4317, description="TCP port to listen on.")
    max_message_size: ByteSize = Field(
        default=16 * MiB,
        ge=1024,
        le=MAX_MESSAGE_HARD_CAP,
        description="Largest request accepted, after decompression (bytes or quantity; at most 64Mi). "
        "Larger requests get RESOURCE_EXHAUSTED.",
    )
    tls: ServerTLS | None = Field(default=None, description="Serve TLS instead of plaintext.")
    auth: ReceiverAuth | None = Field(default=None, description="Require a bearer token.")


class Cors(SpecModel):
    """Cross-origin access for browser clients of the OTLP/HTTP receiver."""

    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=64,
        description='Origins allowed, e.g. "https://app.example.com", or "*".',
    )
    allowed_headers: list[str] = Field(
        default_factory=list, max_length=64, description="Request headers allowed beyond the OTLP defaults."
    )
    max_age: Duration = Field(
        default=7200.0, ge=0, le=86400, description="How long browsers cache a preflight."
    )


class HttpReceiver(SpecModel):
    """The OTLP/HTTP receiver (POST /v1/traces, /v1/metrics, /v1/logs; protobuf or JSON)."""

    enabled: bool = Field(default=True, description="Serve OTLP/HTTP.")
    port: Port = Field(default=4318, description="TCP port to listen on.")
    max_body_size: ByteSize = Field(
        default=16 * MiB,
        ge=1024,
        le=MAX_MESSAGE_HARD_CAP,
        description="Largest body accepted, checked after decompression too (bytes or quantity; at most "
        "64Mi). Larger bodies get 413.",
    )
    read_timeout: Duration = Field(
        default=30.0,
        ge=0.1,
        le=600,
        description="Longest wait for a request's headers, for its body, and on an idle keep-alive "
        "connection; slower clients (slowloris) are disconnected, or get 408 mid-body.",
    )
    tls: ServerTLS | None = Field(default=None, description="Serve HTTPS instead of HTTP.")
    auth: ReceiverAuth | None = Field(default=None, description="Require a bearer token.")
    cors: Cors | None = Field(default=None, description="Answer CORS preflights for these origins.")


class OtlpReceivers(SpecModel):
    """OTLP over gRPC and HTTP; at least one must be enabled."""

    grpc: GrpcReceiver = Field(default_factory=GrpcReceiver, description="OTLP/gRPC receiver.")
    http: HttpReceiver = Field(default_factory=HttpReceiver, description="OTLP/HTTP receiver.")


class Receivers(SpecModel):
    """Where telemetry comes in."""

    otlp: OtlpReceivers = Field(default_factory=OtlpReceivers, description="The OTLP receivers.")


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


class Batch(SpecModel):
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
    """Adds k8s.* resource attributes where missing, only those true where the agent runs: sidecar adds
    namespace, pod, pod uid, node and cluster; daemonset node and cluster; deployment cluster only."""

    cluster_name: str | None = Field(
        default=None, max_length=253, description="Value of k8s.cluster.name (unset: not added)."
    )


class Processors(SpecModel):
    """What happens between receiving and exporting."""

    memory_limiter: MemoryLimiter = Field(default_factory=MemoryLimiter, description="Memory bound.")
    batch: Batch = Field(default_factory=Batch, description="Batching, applied per exporter.")
    resource: AttributeProcessor | None = Field(default=None, description="Actions on resource attributes.")
    attributes: AttributeProcessor | None = Field(
        default=None, description="Actions on span, data point and log record attributes."
    )
    sampling: Sampling | None = Field(default=None, description="Trace sampling.")
    k8s_attributes: K8sAttributes | None = Field(
        default=None, alias="k8sAttributes", description="Kubernetes metadata enrichment."
    )


class PipelineRef(SpecModel):
    """Another OTLPPipeline, resolved by the operator to its Service."""

    name: DnsLabel = Field(description="Name of the target pipeline.")
    namespace: DnsLabel | None = Field(default=None, description="Its namespace; this pipeline's by default.")


class ClientTLS(SpecModel):
    """TLS for an exporter. https:// endpoints use TLS with the system CAs unless told otherwise."""

    insecure: bool = Field(default=False, description="Plaintext, even for gRPC endpoints without a scheme.")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify the server (testing only).")
    ca_secret: SecretKeyRef | None = Field(default=None, description="CA bundle to verify the server with.")
    ca_file: str | None = Field(
        default=None, description="Path of a CA bundle inside the agent container (for agents run by hand)."
    )
    cert_secret: DnsLabel | None = Field(
        default=None, description="A kubernetes.io/tls Secret presented as the client certificate (mTLS)."
    )


class HeaderFromSecret(SpecModel):
    """A request header whose value comes from a Secret (API keys); never logged or rendered."""

    name: str = Field(pattern=r"^[A-Za-z0-9-]+$", max_length=128, description="Header name.")
    secret_key_ref: SecretKeyRef = Field(description="Where the value is.")


class Retry(SpecModel):
    """Exponential backoff with jitter for retryable failures (per the OTLP specification)."""

    enabled: bool = Field(default=True, description="Retry retryable failures.")
    initial_interval: Duration = Field(default=5.0, ge=0.001, le=3600, description="First wait.")
    max_interval: Duration = Field(default=30.0, ge=0.001, le=3600, description="Longest single wait.")
    multiplier: float = Field(default=1.5, ge=1.0, le=10.0, description="Growth of the wait per attempt.")
    jitter: float = Field(default=0.5, ge=0.0, le=1.0, description="Randomization: wait × (1 ± jitter).")
    max_elapsed: Duration = Field(
        default=300.0, ge=0, le=86400, description="Give up on a batch after this long (0: never)."
    )


class Queue(SpecModel):
    """The exporter's queue between the batcher and the sender."""

    type: QueueType = Field(
        default=QueueType.memory, description="memory, or persistent (SQLite on a volume)."
    )
    max_bytes: ByteSize = Field(
        default=64 * MiB, ge=1024, description="Bytes queued before whenFull applies."
    )
    max_items: int = Field(default=1_000_000, ge=1, description="Items queued before whenFull applies.")
    when_full: WhenFull = Field(
        default=WhenFull.refuse,
        description="refuse (clients get a retryable status), dropOldest (counted), or block (until space).",
    )
    storage_size: ByteSize | None = Field(
        default=None, description="Size of the volume for a persistent queue (required for persistent)."
    )
    storage_class_name: str | None = Field(default=None, description="StorageClass of that volume.")
    consumers: int = Field(default=2, ge=1, le=64, description="Exports in flight at once.")


class DebugExporter(SpecModel):
    """Writes what arrives to stdout or a file, for checking a pipeline by eye."""

    verbosity: str = Field(
        default="basic", pattern=r"^(basic|detailed)$", description="basic: counts; detailed: items."
    )
    path: str | None = Field(default=None, description="File to append to; stdout when unset.")


class Exporter(SpecModel):
    """Where telemetry goes. Set exactly one of endpoint, endpoints, pipelineRef or debug."""

    name: DnsLabel = Field(description="Unique name, used by routes and in metrics.")
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        description="Backend URL. gRPC: host:port or http(s)://host:port. HTTP: base URL; /v1/<signal> is "
        "appended unless the URL already ends with it.",
    )
    endpoints: list[str] | None = Field(
        default=None, min_length=2, max_length=8, description="Ordered failover endpoints."
    )
    pipeline_ref: PipelineRef | None = Field(default=None, description="Send to another pipeline.")
    debug: DebugExporter | None = Field(default=None, description="Print instead of sending.")
    protocol: Protocol = Field(default=Protocol.grpc, description="grpc | http/protobuf | http/json.")
    compression: Compression = Field(
        default=Compression.gzip, description="none | gzip | deflate | zstd (zstd only over HTTP)."
    )
    compression_level: int | None = Field(
        default=None,
        ge=1,
        le=19,
        description="Higher is smaller and slower: gzip/deflate 1-3 (ISA-L), zstd 1-19; default 1.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    headers_from: list[HeaderFromSecret] = Field(
        default_factory=list, max_length=16, description="Headers with values from Secrets."
    )
    tls: ClientTLS = Field(default_factory=ClientTLS, description="TLS settings.")
    timeout: Duration = Field(default=10.0, ge=0.001, le=600, description="Per-attempt timeout.")
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    queue: Queue = Field(default_factory=Queue, description="Queue policy.")
    delivery: Delivery = Field(
        default=Delivery.fast,
        description="When clients are acknowledged: fast (batched), durable (on disk), endToEnd (exported).",
    )
    signals: list[Signal] = Field(
        default_factory=lambda: list(Signal), min_length=1, description="Signals this exporter accepts."
    )


class AttributeMatch(SpecModel):
    """A test on one resource attribute; set exactly one of equals, in, regex, exists."""

    attribute: str = Field(min_length=1, max_length=256, description="Resource attribute key.")
    equals: str | None = Field(default=None, description="Value equals this.")
    in_: list[str] | None = Field(default=None, alias="in", description="Value is one of these.")
    regex: str | None = Field(
        default=None, max_length=1024, description="Value fully matches this regular expression (Python re)."
    )
    exists: bool | None = Field(default=None, description="Attribute is present (true) or absent (false).")


class RouteRule(SpecModel):
    """Send matching data to these exporters; the first matching rule wins."""

    name: DnsLabel = Field(description="Name, used in metrics.")
    signals: list[Signal] = Field(default_factory=lambda: list(Signal), min_length=1, description="Signals.")
    match: list[AttributeMatch] = Field(default_factory=list, max_length=16, description="All must hold.")
    exporters: list[DnsLabel] = Field(min_length=1, description="Exporter names.")


class Routes(SpecModel):
    """Ordered routing rules; data no rule matches goes to the default exporters."""

    rules: list[RouteRule] = Field(default_factory=list, max_length=64, description="Checked in order.")
    default: list[DnsLabel] = Field(
        default_factory=list,
        description="Exporters for data no rule takes; empty: that data is counted as unrouted and reported "
        "to clients as partial success.",
    )


class InjectionTarget(SpecModel):
    """Which pods may ask for this pipeline as a sidecar (or env wiring)."""

    namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pods may inject it; empty: this namespace only."
    )
    pod_selector: dict[str, str] = Field(default_factory=dict, description="Labels a pod must carry.")


class Injection(SpecModel):
    """Sidecar injection settings."""

    allowed: InjectionTarget = Field(default_factory=InjectionTarget, description="Who may inject it.")
    resources: Resources = Field(
        default=Resources(
            requests=ResourceList(cpu="50m", memory="64Mi"), limits=ResourceList(memory="256Mi")
        ),
        description="Resources of the injected container.",
    )
    rollout_on_change: bool = Field(
        default=False, description="Restart workloads whose injected sidecar has an old config hash."
    )


class Telemetry(SpecModel):
    """The agent's own metrics, health endpoints and logs."""

    port: Port = Field(default=8888, description="Port of /metrics, /healthz and /readyz.")
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$", description="Log level.")


class Lifecycle(SpecModel):
    """Shutdown and reload behaviour."""

    shutdown_grace_period: Duration = Field(
        default=25.0, ge=0, le=3600, description="On SIGTERM, how long to drain queues before exiting."
    )


class OTLPPipelineSpec(SpecModel):
    """Desired state of an OTLP pipeline: how the agent runs, what it receives, and where it sends."""

    mode: Mode = Field(default=Mode.deployment, description="deployment (gateway) | daemonset | sidecar.")
    replicas: int = Field(default=1, ge=0, le=100, description="Gateway replicas (mode deployment).")
    autoscaling: Autoscaling | None = Field(default=None, description="Scale a gateway on CPU.")
    image: str | None = Field(
        default=None, max_length=512, description="Agent image; the operator's default."
    )
    resources: Resources = Field(default_factory=Resources, description="Agent container resources.")
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment variables.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels pods must match.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32, description="Tolerations.")
    priority_class_name: str | None = Field(default=None, max_length=253, description="PriorityClass.")
    receivers: Receivers = Field(default_factory=Receivers, description="Receivers.")
    processors: Processors = Field(default_factory=Processors, description="Processors.")
    exporters: list[Exporter] = Field(min_length=1, max_length=32, description="Exporters; names unique.")
    routes: Routes | None = Field(default=None, description="Routing; without it every exporter gets all.")
    injection: Injection | None = Field(default=None, description="Sidecar injection (mode sidecar).")
    allowed_referrer_namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pipelines may export to this one via pipelineRef."
    )
    telemetry: Telemetry = Field(default_factory=Telemetry, description="Self-telemetry.")
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Shutdown behaviour.")


class Condition(SpecModel):
    """A status condition, as in every Kubernetes API."""

    type: str = Field(description="Ready, ConfigValid, Progressing or Degraded.")
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="Generation this was computed for.")


class Endpoints(SpecModel):
    """In-cluster endpoints of the pipeline's Service."""

    grpc: str | None = Field(default=None, description="OTLP/gRPC endpoint.")
    http: str | None = Field(default=None, description="OTLP/HTTP endpoint.")


class Rollouts(SpecModel):
    """The last pass restarting workloads whose injected sidecar runs an old config."""

    config_hash: str | None = Field(default=None, description="The config hash workloads were rolled to.")
    last_pass: str | None = Field(default=None, description="When the operator last looked (RFC 3339).")
    restarted: list[str] = Field(
        default_factory=list, description="Workloads restarted (kind/name, first 20)."
    )
    restarted_count: int = Field(default=0, description="How many workloads were restarted.")
    in_progress: int = Field(default=0, description="Workloads already rolling to this config.")
    pending: list[str] = Field(default_factory=list, description="Waiting for the rate limit (first 20).")
    pending_count: int = Field(default=0, description="How many are waiting.")
    not_restartable: list[str] = Field(
        default_factory=list, description="Stale pods without a restartable owner (bare pods, Jobs)."
    )


class ResolvedReference(SpecModel):
    """An exporter's pipelineRef as the operator resolved it (what the agent was given)."""

    exporter: str = Field(description="The exporter's name.")
    pipeline: str = Field(description="The target pipeline, namespace/name.")
    endpoint: str = Field(description="The target's Service endpoint the agent sends to.")
    protocol: str = Field(description="grpc or http/protobuf (or the exporter's explicit protocol).")
    tls: bool = Field(default=False, description="True when the target's receiver serves TLS.")


class OTLPPipelineStatus(SpecModel):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="allow")

    observed_generation: int | None = Field(default=None, description="Last generation reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    replicas: int | None = Field(default=None, description="Desired agent pods.")
    ready_replicas: int | None = Field(default=None, description="Ready agent pods.")
    selector: str | None = Field(default=None, description="Label selector of the agent pods (scale).")
    endpoints: Endpoints | None = Field(default=None, description="Service endpoints.")
    config_hash: str | None = Field(default=None, description="Hash of the rendered agent config.")
    references: list[ResolvedReference] | None = Field(
        default=None, description="Where each pipelineRef points, as resolved by the operator."
    )
    rollouts: Rollouts | None = Field(
        default=None, description="Stale-sidecar restarts (mode sidecar with injection.rolloutOnChange)."
    )


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the YAML-ready dict a user would write (camelCase, units as strings)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
