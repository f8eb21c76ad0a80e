"""The node-agent DaemonSet (mode daemonset): one agent per node, replaced one node at a time."""

from __future__ import annotations

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import container as container_module
from otlp_operator.manifests import meta, pod


def build(pipeline: loader.OTLPPipeline, image: str, owner: meta.Owner | None = None) -> meta.Manifest:
    """The DaemonSet running the node agents."""
    template = pod.template(pipeline, image)
    _open_otlp_ports_on_the_node(template)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta.object_meta(pipeline, naming.workload(pipeline), owner),
        "spec": {
            "selector": {"matchLabels": naming.selector_labels(pipeline)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": template,
        },
    }


def _open_otlp_ports_on_the_node(template: meta.Manifest) -> None:
    """Apps reach their node's agent at status.hostIP (injected env wiring), so the OTLP ports are host
    ports; the metrics port stays pod-only."""
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            if port["name"] in (container_module.GRPC_PORT, container_module.HTTP_PORT):
                port["hostPort"] = port["containerPort"]
