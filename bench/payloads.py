"""Realistic, pre-serialized OTLP trace requests for the load generator.

Owns what the benchmark sends: `ExportTraceServiceRequest` bodies of N spans (100 by default), each span with
~10 attributes (HTTP server semantics, a user id, a request id) and a resource carrying service and k8s
attributes, as an instrumented pod would send them. Trace and span ids are random per request (seeded, so
runs are reproducible), so compression sees the same entropy a real workload has. Built once, before the
clock starts; the hot loop only sends bytes.
"""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.otlp import otlp_json

ROUTES = ("/api/v1/orders/{id}", "/api/v1/cart", "/api/v1/users/{id}", "/healthz", "/api/v1/search")
METHODS = ("GET", "GET", "GET", "POST", "PUT")
START_NS = 1_760_000_000_000_000_000


def _kv(key: str, value: str | int | bool) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def resource(pod_index: int) -> resource_pb2.Resource:
    """The resource an injected sidecar would report for one pod of a checkout Deployment."""
    pod = f"checkout-7d9f8b6c5-{pod_index:05x}"
    attrs = {
        "service.name": "checkout",
        "service.namespace": "shop",
        "service.version": "2.14.3",
        "deployment.environment": "production",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.27.0",
        "k8s.cluster.name": "prod-eu-west-1",
        "k8s.namespace.name": "shop",
        "k8s.deployment.name": "checkout",
        "k8s.pod.name": pod,
        "k8s.pod.uid": f"5f1c2d3e-{pod_index:04x}-4a5b-8c9d-0e1f2a3b4c5d",
        "k8s.node.name": f"ip-10-0-{pod_index % 8}-{pod_index % 200}.eu-west-1.compute.internal",
        "host.name": pod,
    }
    return resource_pb2.Resource(attributes=[_kv(k, v) for k, v in attrs.items()])


def span(rng: random.Random, trace_id: bytes, parent: bytes, index: int) -> trace_pb2.Span:
    """One HTTP server span with ~10 attributes."""
    route_index = rng.randrange(len(ROUTES))
    route = ROUTES[route_index]
    method = METHODS[route_index]
    status = rng.choice((200, 200, 200, 200, 201, 404, 500))
    start = START_NS + index * 1_000_000 + rng.randrange(1_000_000)
    attrs: list[tuple[str, str | int | bool]] = [
        ("http.request.method", method),
        ("http.route", route),
        ("url.path", route.replace("{id}", str(rng.randrange(10**9)))),
        ("url.scheme", "https"),
        ("http.response.status_code", status),
        ("server.address", "checkout.shop.svc.cluster.local"),
        ("server.port", 8080),
        ("client.address", f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"),
        ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0"),
        ("app.user_id", f"u-{rng.randrange(10**8):08d}"),
        ("app.cache_hit", rng.random() < 0.3),
    ]
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        parent_span_id=parent,
        name=f"{method} {route}",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + rng.randrange(200_000, 80_000_000),
        attributes=[_kv(k, v) for k, v in attrs],
        status=trace_pb2.Status(
            code=trace_pb2.Status.STATUS_CODE_ERROR if status >= 500 else trace_pb2.Status.STATUS_CODE_UNSET
        ),
    )


def build_request(seed: int, spans: int = 100) -> trace_service_pb2.ExportTraceServiceRequest:
    """One request: a resource, one instrumentation scope, `spans` spans in traces of ~5 spans each."""
    rng = random.Random(seed)
    items = []
    trace_id, root = rng.randbytes(16), b""
    for i in range(spans):
        if i % 5 == 0:
            trace_id, root = rng.randbytes(16), b""
        item = span(rng, trace_id, root, i)
        root = root or item.span_id
        items.append(item)
    scope = common_pb2.InstrumentationScope(name="opentelemetry.instrumentation.flask", version="0.48b0")
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(seed % 64),
                scope_spans=[trace_pb2.ScopeSpans(scope=scope, spans=items)],
                schema_url="https://opentelemetry.io/schemas/1.24.0",
            )
        ]
    )


def build_bodies(count: int = 8, spans: int = 100, seed: int = 1) -> list[bytes]:
    """`count` distinct serialized requests of `spans` spans each (different ids and values)."""
    return [build_request(seed * 1000 + i, spans).SerializeToString() for i in range(count)]


def build_two_team_bodies(count: int = 8, spans: int = 100, seed: int = 1) -> list[bytes]:
    """Like `build_bodies`, but each request holds two resources of `spans` / 2 spans each, the first with
    the resource attribute team=a, the second team=b: what a node agent or gateway forwards."""
    bodies = []
    for i in range(count):
        request = trace_service_pb2.ExportTraceServiceRequest()
        for team, offset in (("a", 0), ("b", 500)):
            part = build_request(seed * 1000 + i + offset, spans // 2).resource_spans[0]
            part.resource.attributes.append(_kv("team", team))
            request.resource_spans.append(part)
        bodies.append(request.SerializeToString())
    return bodies


def as_json(bodies: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The same requests in OTLP/JSON (hex ids, camelCase), as a browser or a JSON-speaking SDK sends them."""
    return tuple(otlp_json.to_json(trace_service_pb2.ExportTraceServiceRequest.FromString(b)) for b in bodies)
