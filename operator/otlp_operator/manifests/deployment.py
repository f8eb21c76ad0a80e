"""The gateway Deployment (mode deployment).

With autoscaling the HorizontalPodAutoscaler owns the replica count, so `spec.replicas` is left out:
writing it on every reconcile would fight the autoscaler. Rollouts surge before removing a pod (no
capacity lost while the config rolls), except with a persistent-queue claim, where `Recreate` makes the
old pod release the ReadWriteOnce volume before the new one mounts it (see `storage`).
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import meta, pod, storage


def build(pipeline: loader.OTLPPipeline, image: str, owner: meta.Owner | None = None) -> meta.Manifest:
    """The Deployment running the gateway agents."""
    body: dict[str, Any] = {
        "selector": {"matchLabels": naming.selector_labels(pipeline)},
        "strategy": _strategy(pipeline),
        "template": pod.template(pipeline, image),
    }
    if pipeline.spec.autoscaling is None:
        body = {"replicas": pipeline.spec.replicas, **body}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(pipeline, naming.workload(pipeline), owner),
        "spec": body,
    }


def _strategy(pipeline: loader.OTLPPipeline) -> dict[str, Any]:
    if storage.plan(pipeline).backing == storage.Backing.claim:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
