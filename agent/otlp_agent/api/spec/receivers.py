"""Where telemetry comes in: the OTLP/gRPC and OTLP/HTTP receivers, their TLS, auth and CORS."""

from __future__ import annotations

from pydantic import Field

from otlp_agent.api.spec.common import (
    MAX_MESSAGE_HARD_CAP,
    ByteSize,
    DnsLabel,
    Duration,
    MiB,
    Port,
    SecretKeyRef,
    SpecModel,
)


class ServerTLS(SpecModel):
    """TLS for a receiver, from Secrets the operator mounts into the agent."""

    cert_secret: DnsLabel = Field(description="A kubernetes.io/tls Secret with tls.crt and tls.key.")
    client_ca_secret: SecretKeyRef | None = Field(
        default=None, description="CA bundle to verify client certificates against (enables mTLS)."
    )


class TenantToken(SpecModel):
    """A tenant and its token: requests bearing this token come from this tenant, whatever their data says."""

    name: DnsLabel = Field(description="The tenant, as routes.rules[].tenants names it.")
    bearer_token_secret: SecretKeyRef = Field(description="Secret key holding this tenant's token.")


class ReceiverAuth(SpecModel):
    """Bearer-token authentication for a receiver: a request must carry one of these tokens. Set
    bearerTokenSecret, tenants, or both."""

    bearer_token_secret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a token clients may send (it names no tenant)."
    )
    tenants: list[TenantToken] = Field(
        default_factory=list,
        max_length=64,
        description="One token per tenant (each token must differ): routes can match the tenant a "
        "request's token names, which a client cannot fake.",
    )


#: Default of `maxItemsPerRequest`: well above what SDKs (512) and collectors (8192) send in one request.
DEFAULT_MAX_ITEMS_PER_REQUEST = 100_000


def _max_items_per_request() -> int:
    return Field(
        default=DEFAULT_MAX_ITEMS_PER_REQUEST,
        ge=100,
        le=1_000_000,
        description="Most entries one request may hold: spans, data points or log records, plus its "
        "resource, scope (and metric) entries. Larger requests are refused for good (HTTP 413, gRPC "
        "RESOURCE_EXHAUSTED) after at most this many are looked at, so a flood of tiny items costs bounded "
        "memory and time.",
    )


class GrpcReceiver(SpecModel):
    """The OTLP/gRPC receiver (TraceService, MetricsService, LogsService)."""

    enabled: bool = Field(default=True, description="Serve OTLP/gRPC.")
    port: Port = Field(default=4317, description="TCP port to listen on.")
    max_message_size: ByteSize = Field(
        default=16 * MiB,
        ge=1024,
        le=MAX_MESSAGE_HARD_CAP,
        description="Largest request accepted, after decompression (bytes or quantity; at most 64Mi). "
        "Larger requests get RESOURCE_EXHAUSTED. Each call being read reserves this much of the memory "
        "limit until its real size is known.",
    )
    max_items_per_request: int = _max_items_per_request()
    read_timeout: Duration = Field(
        default=30.0,
        ge=0.1,
        le=600,
        description="Longest a connection may take for its TLS / HTTP/2 handshake, and a call to deliver "
        "its message once it is read (DEADLINE_EXCEEDED; checked every 0.25 s, so a late message is refused "
        "up to 0.25 s after, never before).",
    )
    max_concurrent_streams: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Calls in progress at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).",
    )
    max_connection_idle: Duration = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="A connection without calls for this long is closed (GOAWAY; clients reconnect).",
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
    max_items_per_request: int = _max_items_per_request()
    read_timeout: Duration = Field(
        default=30.0,
        ge=0.1,
        le=600,
        description="Longest wait for a TLS handshake, a request's headers, its body, and on an idle "
        "keep-alive connection; slower clients (slowloris) are disconnected, or get 408 mid-body (a body "
        "is checked every 0.25 s: refused up to 0.25 s after, never before). Also bounds each WebSocket "
        "message, from its first frame to its last fragment (late: the connection is closed, 1008).",
    )
    tls: ServerTLS | None = Field(default=None, description="Serve HTTPS instead of HTTP.")
    auth: ReceiverAuth | None = Field(default=None, description="Require a bearer token.")
    cors: Cors | None = Field(default=None, description="Answer CORS preflights for these origins.")


class WebSocketReceiver(SpecModel):
    """OTLP over a WebSocket, on a path of the OTLP/HTTP receiver's port (its TLS, auth, allowed origins
    and maxBodySize apply): one connection carries many export requests, each answered by its id. The
    protocol is in docs/websocket.md."""

    enabled: bool = Field(default=False, description="Serve OTLP over WebSocket (needs the HTTP receiver).")
    path: str = Field(
        default="/v1/websocket",
        pattern=r"^/[A-Za-z0-9._~/-]{0,200}$",
        description="Path on the HTTP receiver's port where clients open the WebSocket.",
    )
    max_in_flight: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Requests of one connection handled at once; beyond that the agent stops reading it.",
    )
    max_connections: int = Field(
        default=256, ge=1, le=65536, description="Open WebSocket connections; more are refused with 503."
    )
    idle_timeout: Duration = Field(
        default=300.0,
        ge=1,
        le=86400,
        description="Close a connection idle for this long: no message being read or handled, none sent "
        "since the last answer (pings and pongs do not count).",
    )


class OtlpReceivers(SpecModel):
    """OTLP over gRPC and HTTP (and WebSocket); at least one of gRPC and HTTP must be enabled."""

    grpc: GrpcReceiver = Field(default_factory=GrpcReceiver, description="OTLP/gRPC receiver.")
    http: HttpReceiver = Field(default_factory=HttpReceiver, description="OTLP/HTTP receiver.")
    websocket: WebSocketReceiver | None = Field(
        default=None, description="OTLP over WebSocket, on the HTTP receiver's port (off unless enabled)."
    )


class Receivers(SpecModel):
    """Where telemetry comes in."""

    otlp: OtlpReceivers = Field(default_factory=OtlpReceivers, description="The OTLP receivers.")
