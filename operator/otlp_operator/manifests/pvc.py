"""The PersistentVolumeClaim of a single-replica gateway's persistent queue (see `storage`).

ReadWriteOnce, sized as the sum of the persistent exporters' `storageSize`. Owned by the pipeline, so the
backlog is deleted with it. Kubernetes lets a claim grow but not shrink or change class; the reconciler
must not try to apply such changes.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import meta, storage


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The claim holding the queue directory."""
    plan = storage.plan(pipeline)
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": plan.size}},
    }
    if plan.storage_class is not None:
        body["storageClassName"] = plan.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta.object_meta(pipeline, naming.queue_claim(pipeline), owner),
        "spec": body,
    }
