"""The node-agent DaemonSet (mode daemonset): one agent per node, replaced one node at a time."""

from __future__ import annotations

from otlp_agent import config

from otlp_operator import naming
from otlp_operator.manifests import meta, pod


def build(pipeline: config.Pipeline, image: str, owner: meta.Owner | None = None) -> meta.Manifest:
    """The DaemonSet running the node agents."""
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta.object_meta(pipeline, naming.workload(pipeline), owner),
        "spec": {
            "selector": {"matchLabels": naming.selector_labels(pipeline)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": pod.template(pipeline, image),
        },
    }
