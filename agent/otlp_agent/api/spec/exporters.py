"""Where telemetry goes: endpoints, protocol, compression, TLS, headers, retry, queue and delivery mode."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from otlp_agent.api.spec.common import (
    PRESENCE_MATTERS,
    ByteSize,
    DnsLabel,
    Duration,
    MiB,
    SecretKeyRef,
    Signal,
    SpecModel,
)


class Protocol(StrEnum):
    grpc = "grpc"
    http_protobuf = "http/protobuf"
    http_json = "http/json"


class Compression(StrEnum):
    none = "none"
    gzip = "gzip"
    deflate = "deflate"
    zstd = "zstd"
    auto = "auto"


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
        default=300.0,
        ge=0,
        le=86400,
        description="How long one batch is retried while the backend is up (time the circuit breaker holds "
        "exports back never counts). Then: delivery fast gives the batch up (counted); durable and "
        "endToEnd put it back at the end of the queue, never giving it up by time. 0: retry for ever.",
    )


class Queue(SpecModel):
    """The exporter's queue between the batcher and the sender."""

    type: QueueType = Field(
        default=QueueType.memory, description="memory, or persistent (SQLite on a volume)."
    )
    max_bytes: ByteSize = Field(
        default=64 * MiB,
        ge=1024,
        description="Most bytes the queue holds, batches being exported included (a hard bound). A request "
        "larger than this is refused for good; batches never exceed it.",
    )
    max_items: int = Field(
        default=1_000_000,
        ge=1,
        description="Most items the queue holds, batches being exported included (a hard bound). A request "
        "with more is refused for good; batches never exceed it.",
    )
    when_full: WhenFull = Field(
        default=WhenFull.refuse,
        description="refuse (clients get a retryable status), dropOldest (counted), or block (until space).",
    )
    max_age: Duration = Field(
        default=0.0,
        ge=0,
        le=30 * 86400,
        description="Drop (and count, reason max_age) a batch batched longer ago than this instead of "
        "sending it again; checked when a consumer takes it and before every retry. 0: never (the "
        "default): data leaves the queue only when delivered, refused for good, or evicted by whenFull: "
        "dropOldest.",
    )
    storage_size: ByteSize | None = Field(
        default=None, description="Size of the volume for a persistent queue (required for persistent)."
    )
    storage_class_name: str | None = Field(default=None, description="StorageClass of that volume.")
    consumers: int = Field(default=2, ge=1, le=64, description="Exports in flight at once.")


class CompressionAuto(SpecModel):
    """How `compression: auto` picks a codec: every `evaluateEvery`, the exporter compresses a sample of a
    live batch with each candidate, measuring its ratio and its CPU time; it then sends with the candidate
    that makes the fewest bytes among those costing at most `cpuBudget` per MiB (candidates within 2% of
    the fewest bytes count as equal, and the cheaper wins; if none fits the budget, the cheapest wins). A
    codec the backend refuses (HTTP 415, gRPC UNIMPLEMENTED about compression) is dropped from the choice
    and the batch is sent again with the next best."""

    candidates: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Codecs to choose from, each `codec` or `codec:level` (none, gzip, deflate, zstd; "
        "levels as compressionLevel). Default: zstd, gzip, none over HTTP; gzip, none over gRPC.",
    )
    cpu_budget: Duration = Field(
        default=0.005,
        ge=0,
        le=10,
        description="CPU time a codec may spend compressing one MiB of batch data (0: only none fits).",
    )
    evaluate_every: Duration = Field(
        default=60.0, ge=1, le=86400, description="How often every candidate is measured again."
    )
    sample_size: ByteSize = Field(
        default=128 * 1024,
        ge=1024,
        le=4 * MiB,
        description="Bytes of a batch each candidate compresses when measured (the start of the batch).",
    )


class Connections(SpecModel):
    """A pool of connections (HTTP) or channels (gRPC) for one exporter. Batches go to the connection
    with the fewest requests in flight; a connection idle for `idleTimeout` is closed and opened again
    when needed."""

    count: int = Field(default=1, ge=1, le=64, description="Connections (HTTP) or channels (gRPC) to open.")
    max_in_flight: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Requests in flight on one connection. HTTP/1.1 carries one at a time, so 1 over HTTP; "
        "gRPC multiplexes streams on its HTTP/2 connection.",
    )
    idle_timeout: Duration = Field(
        default=60.0, ge=0.1, le=3600, description="Close a connection that sent nothing for this long."
    )


class RoutingKey(StrEnum):
    trace_id = "traceID"
    resource = "resource"
    round_robin = "roundRobin"


class LoadBalancing(SpecModel):
    """Spread the exporter's data over every address its endpoint's host name resolves to — a headless
    Service's ready pods, which is what a `pipelineRef` resolves to with load balancing — with one
    connection (gRPC channel) per address and consistent hashing, so a change of the address set moves only
    the share of the addresses that came or went. The names are resolved again every `resolveInterval` and
    after a connection error. With `endpoints`, every listed host counts (balancing, not failover)."""

    routing_key: RoutingKey = Field(
        default=RoutingKey.trace_id,
        description="traceID: every span of a trace goes to the same address (log records by their trace "
        "id, records without one and metrics by resource); resource: every item of a resource goes to the "
        "same address; roundRobin: whole batches in turn, nothing is split.",
    )
    resource_attributes: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="The resource attributes whose values make the key of resource routing (routingKey "
        "resource, and data without a trace id); empty: the whole resource.",
    )
    resolve_interval: Duration = Field(
        default=5.0, ge=1, le=600, description="How often the host names are resolved again."
    )


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
    protocol: Protocol = Field(
        default=Protocol.grpc,
        description="grpc | http/protobuf | http/json (default grpc; with a pipelineRef, what the target "
        "serves).",
        json_schema_extra=PRESENCE_MATTERS,
    )
    compression: Compression = Field(
        default=Compression.gzip,
        description="none | gzip | deflate | zstd (zstd only over HTTP) | auto (chosen by measuring, see "
        "compressionAuto).",
    )
    compression_auto: CompressionAuto | None = Field(
        default=None, description="How compression auto chooses (its defaults when unset)."
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
    connections: Connections | None = Field(
        default=None,
        description="A pool of connections or channels. Unset: over HTTP, one connection per export in "
        "flight (queue.consumers), kept alive 15s; over gRPC, one channel.",
    )
    load_balancing: LoadBalancing | None = Field(
        default=None,
        description="Balance over the addresses the endpoint resolves to (a headless Service: the target's "
        "pods), by trace id, resource or in turn. `connections` then applies to each address.",
    )
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    queue: Queue = Field(default_factory=Queue, description="Queue policy.")
    delivery: Delivery = Field(
        default=Delivery.fast,
        description="When clients are acknowledged: fast (batched), durable (on disk), endToEnd (exported).",
    )
    signals: list[Signal] = Field(
        default_factory=lambda: list(Signal), min_length=1, description="Signals this exporter accepts."
    )
