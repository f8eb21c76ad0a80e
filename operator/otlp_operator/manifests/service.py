"""The Services in front of the agents: the enabled OTLP ports plus metrics, by name.

Every gateway (mode deployment or statefulset) also gets a headless Service (`clusterIP: None`) over the
same pods: its name resolves to the IP of every ready agent pod, which is how a load-balancing exporter
(`loadBalancing`, often through a `pipelineRef`) finds each pod to send to, and it is the StatefulSet's
`serviceName`, which gives each replica its own DNS name (`<pod>.<headless service>.<namespace>.svc`).
Not-ready pods are left out (`publishNotReadyAddresses: false`): a replica that is starting or draining
gets no new data.

Target ports are the container's port names, so the Service and the pods cannot drift apart. For node
agents (mode daemonset) `internalTrafficPolicy: Local` keeps each pod's telemetry on its own node's agent,
which is the point of a node agent (and what makes its node-level enrichment right); pods on a node
without an agent get connection errors rather than silently crossing nodes.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import container, meta


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The ClusterIP Service of a gateway or node-agent pipeline."""
    body: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": naming.selector_labels(pipeline),
        "ports": [_service_port(pipeline, port) for port in container.ports(pipeline)],
    }
    if pipeline.spec.mode == spec.Mode.daemonset:
        body["internalTrafficPolicy"] = "Local"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(pipeline, naming.service(pipeline), owner),
        "spec": body,
    }


def build_headless(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The headless Service of a gateway: one DNS record per ready agent pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(pipeline, naming.headless_service(pipeline), owner),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": False,
            "selector": naming.selector_labels(pipeline),
            "ports": [_service_port(pipeline, port) for port in container.ports(pipeline)],
        },
    }


def _service_port(pipeline: loader.OTLPPipeline, port: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": port["name"],
        "port": port["containerPort"],
        "targetPort": port["name"],
        "protocol": "TCP",
        "appProtocol": _app_protocol(pipeline, port["name"]),
    }


def _app_protocol(pipeline: loader.OTLPPipeline, name: str) -> str:
    otlp = pipeline.spec.receivers.otlp
    if name == container.GRPC_PORT:
        return "grpc"
    if name == container.HTTP_PORT and otlp.http.tls is not None:
        return "https"
    return "http"
