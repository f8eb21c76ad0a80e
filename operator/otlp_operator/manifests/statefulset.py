"""The gateway StatefulSet (mode statefulset): replicas with stable names and a volume each.

- `volumeClaimTemplates`: with persistent queues, one claim per replica (`queue`, ReadWriteOnce, the sum
  of the persistent exporters' `storageSize`, their storage class; see `storage`), mounted where the
  agent keeps its queues. Claims are kept when the StatefulSet scales down and deleted with it
  (`persistentVolumeClaimRetentionPolicy`): a replica removed with a backlog it could not deliver within
  its grace period leaves it on its claim, and the same ordinal resumes it when the StatefulSet grows
  again.
- `podManagementPolicy: OrderedReady`: replicas start in ordinal order, each once the one before is
  ready, and a scale-down removes the highest ordinal first, one replica at a time, each fully stopped
  (drained) before the next goes; rollouts replace them one at a time from the highest ordinal
  (`RollingUpdate`).
- `serviceName`: the headless Service (`service.build_headless`), which gives each replica a DNS name
  and lets load-balancing exporters find every ready replica.
- With autoscaling the HorizontalPodAutoscaler owns the replica count, so `spec.replicas` is left out.

`volumeClaimTemplates`, `serviceName`, `selector` and `podManagementPolicy` cannot change on a live
StatefulSet; the reconciler replaces it (orphaning its pods and claims, which the new one adopts) when
they must (`reconcile.apply`).
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import meta, pod, storage

#: Fields of a StatefulSet's spec the API server refuses to change.
IMMUTABLE = ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy")


def build(pipeline: loader.OTLPPipeline, image: str, owner: meta.Owner | None = None) -> meta.Manifest:
    """The StatefulSet running the gateway agents."""
    body: dict[str, Any] = {
        "serviceName": naming.headless_service(pipeline),
        "selector": {"matchLabels": naming.selector_labels(pipeline)},
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
        "template": pod.template(pipeline, image),
    }
    if pipeline.spec.autoscaling is None:
        body = {"replicas": pipeline.spec.replicas, **body}
    plan = storage.plan(pipeline)
    if plan.backing == storage.Backing.claim_template:
        body["volumeClaimTemplates"] = [_claim_template(pipeline, plan)]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta.object_meta(pipeline, naming.workload(pipeline), owner),
        "spec": body,
    }


def _claim_template(pipeline: loader.OTLPPipeline, plan: storage.QueueStorage) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": plan.size}},
    }
    if plan.storage_class is not None:
        spec["storageClassName"] = plan.storage_class
    return {"metadata": {"name": storage.VOLUME, "labels": naming.labels(pipeline)}, "spec": spec}
