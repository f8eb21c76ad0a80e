"""Which transport an exporter's settings call for: failover over `endpoints` when it lists several, load
balancing over the addresses they resolve to with `loadBalancing`."""

from __future__ import annotations

from collections.abc import Callable

from otlp_agent.api import spec
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.exporter.transport.debug_transport import DebugTransport
from otlp_agent.exporter.transport.failover import FailoverTransport
from otlp_agent.exporter.transport.grpc_transport import GrpcTransport
from otlp_agent.exporter.transport.http_transport import HttpTransport
from otlp_agent.exporter.transport.loadbalancing import LoadBalancingTransport
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics


def make_transport(exporter: spec.Exporter, metrics: AgentMetrics | None = None) -> Transport:
    """The transport for `exporter`; `metrics` (when given) learn the active endpoint."""
    if exporter.debug is not None:
        return DebugTransport(exporter)
    if exporter.load_balancing is not None:
        # One transport per address, without metrics of their own: their labels would collide.
        return LoadBalancingTransport(exporter, lambda one: _one_endpoint(one, None), metrics)
    endpoints = list(exporter.endpoints or [exporter.endpoint or ""])
    if metrics is not None:
        for index, endpoint in enumerate(endpoints):
            metrics.endpoint_active.labels(exporter.name, endpoint).set(1 if index == 0 else 0)
    if len(endpoints) == 1:
        return _one_endpoint(exporter, metrics)
    transports = [
        _one_endpoint(exporter.model_copy(update={"endpoint": endpoint, "endpoints": None}), metrics)
        for endpoint in endpoints
    ]
    return FailoverTransport(endpoints, transports, _reporter(exporter.name, endpoints, metrics))


def _one_endpoint(exporter: spec.Exporter, metrics: AgentMetrics | None) -> Transport:
    if exporter.protocol == spec.Protocol.grpc:
        return GrpcTransport(exporter, metrics)
    return HttpTransport(exporter, metrics)


def _reporter(name: str, endpoints: list[str], metrics: AgentMetrics | None) -> Callable[[int, int], None]:
    def switched(old: int, new: int) -> None:
        logs.event(
            f"failover_{name}",
            f"exporter {name}: {endpoints[old]} keeps failing; switching to {endpoints[new]}",
            exporter=name,
        )
        if metrics is not None:
            metrics.failovers.labels(name).inc()
            metrics.endpoint_active.labels(name, endpoints[old]).set(0)
            metrics.endpoint_active.labels(name, endpoints[new]).set(1)

    return switched
