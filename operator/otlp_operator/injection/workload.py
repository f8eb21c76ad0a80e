"""Which workload owns a pod, from its ownerReferences alone (admission has no time for API calls).

A Deployment's pods are owned by a ReplicaSet named `<deployment>-<pod-template-hash>`; the pod carries
that hash as its `pod-template-hash` label, so the Deployment's name is the ReplicaSet's name without
that suffix. A CronJob's Jobs are named `<cronjob>-<scheduled minutes>`, and a Job created by a CronJob
is owned by it, so that is visible on the Job but not on the pod: the pod reports its Job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

TEMPLATE_HASH_LABEL = "pod-template-hash"
#: Resource attribute per owner kind (OpenTelemetry semantic conventions for Kubernetes).
ATTRIBUTE = {
    "Deployment": "k8s.deployment.name",
    "ReplicaSet": "k8s.replicaset.name",
    "StatefulSet": "k8s.statefulset.name",
    "DaemonSet": "k8s.daemonset.name",
    "Job": "k8s.job.name",
    "CronJob": "k8s.cronjob.name",
}


@dataclasses.dataclass(frozen=True)
class Owner:
    """A workload that owns a pod, directly or through a ReplicaSet."""

    kind: str
    name: str
    uid: str | None = None
    api_version: str | None = None


def controller(pod: dict[str, Any]) -> Owner | None:
    """The pod's controlling ownerReference (the first owner when none is marked controller)."""
    refs = list((pod.get("metadata") or {}).get("ownerReferences") or [])
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None or not ref.get("kind") or not ref.get("name"):
        return None
    return Owner(str(ref["kind"]), str(ref["name"]), ref.get("uid"), ref.get("apiVersion"))


def owners(pod: dict[str, Any]) -> list[Owner]:
    """The workloads above the pod, nearest first: [ReplicaSet, Deployment] for a Deployment's pod."""
    direct = controller(pod)
    if direct is None:
        return []
    if direct.kind != "ReplicaSet":
        return [direct]
    template_hash = ((pod.get("metadata") or {}).get("labels") or {}).get(TEMPLATE_HASH_LABEL)
    if template_hash and direct.name.endswith(f"-{template_hash}"):
        deployment = direct.name[: -len(template_hash) - 1]
        return [direct, Owner("Deployment", deployment, api_version="apps/v1")]
    return [direct]


def top(pod: dict[str, Any]) -> Owner | None:
    """The outermost known workload: what `kubectl rollout restart` acts on, and the service's name."""
    found = owners(pod)
    return found[-1] if found else None


def service_name(pod: dict[str, Any]) -> str:
    """A service name for the pod: its workload's name, else its own name, else its first container's."""
    owner = top(pod)
    if owner is not None:
        return owner.name
    metadata = pod.get("metadata") or {}
    if metadata.get("name"):
        return str(metadata["name"])
    if metadata.get("generateName"):
        return str(metadata["generateName"]).rstrip("-.")
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name") or "unknown_service")


def attributes(pod: dict[str, Any]) -> dict[str, str]:
    """Resource attributes naming the pod's owners (k8s.deployment.name, k8s.replicaset.name, ...)."""
    return {ATTRIBUTE[o.kind]: o.name for o in owners(pod) if o.kind in ATTRIBUTE}
