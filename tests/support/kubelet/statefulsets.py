"""The StatefulSet controller, reduced to what the operator's gateways need, after the real one
(`pkg/controller/statefulset/stateful_set_control.go`): which pods and claims to create or delete next, and
the status to report.

- Pods are named `<set>-<ordinal>`, with `hostname` = that name and `subdomain` = `serviceName` (so the
  headless Service gives each its own DNS name), the labels `controller-revision-hash: <set>-<template
  hash>`, `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`, owned by the set.
- Each `volumeClaimTemplates` entry gives each ordinal a PersistentVolumeClaim `<template>-<set>-<ordinal>`,
  made before its pod and mounted in it (replacing any template volume of that name). Claims are never
  deleted here: with `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete` they are owned by the set
  (an ownerReference without `controller`, as the real controller writes it), so garbage collection
  deletes them with it; `whenScaled: Retain` leaves them to the ordinal when it comes back (`Delete` is not
  emulated: the operator never asks for it).
- `OrderedReady` (the default): one step per pass, and only when every pod before it is Running and Ready:
  create the lowest missing ordinal; else delete the highest ordinal beyond `replicas` (scale-down), waiting
  until a terminating pod is gone before touching the next; else (RollingUpdate) delete the highest ordinal
  whose revision is not the update revision, waiting for each replacement to be ready. `Parallel` creates
  and deletes without waiting.
- Status as the real controller counts it: `replicas` counts every pod that exists (terminating ones
  included), `currentRevision` becomes the update revision once every pod is updated and ready.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tests.support.kubelet import controllers

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclasses.dataclass
class Plan:
    create: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    claims: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    status: dict[str, Any] = dataclasses.field(default_factory=dict)


def ordinal(sts: dict[str, Any], pod: dict[str, Any]) -> int | None:
    prefix = f"{sts['metadata']['name']}-"
    name = str(pod["metadata"]["name"])
    tail = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def revision(sts: dict[str, Any]) -> str:
    return f"{sts['metadata']['name']}-{controllers.template_hash(sts)}"


def claim_name(sts: dict[str, Any], template: dict[str, Any], index: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{index}"


def terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def plan(sts: dict[str, Any], pods: list[dict[str, Any]], claims: set[str], node: str) -> Plan:
    """The next step for `sts`, given the pods it owns and the names of the claims in its namespace."""
    spec = sts["spec"]
    replicas = int(spec.get("replicas", 1))
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    update = revision(sts)
    by_ordinal = {o: p for p in pods if (o := ordinal(sts, p)) is not None}
    result = Plan(status=status(sts, pods, update, replicas))
    if _replicas(sts, by_ordinal, replicas, monotonic, claims, node, result) and monotonic:
        return result
    if _condemned(by_ordinal, replicas, monotonic, result) and monotonic:
        return result
    if result.create or result.delete:
        return result
    _roll(by_ordinal, replicas, update, result)
    return result


def _replicas(
    sts: dict[str, Any],
    by_ordinal: dict[int, dict[str, Any]],
    replicas: int,
    monotonic: bool,
    claims: set[str],
    node: str,
    result: Plan,
) -> bool:
    """Create missing ordinals below `replicas`; True when a monotonic set must wait."""
    for index in range(replicas):
        pod = by_ordinal.get(index)
        if pod is None:
            for template in sts["spec"].get("volumeClaimTemplates") or []:
                if claim_name(sts, template, index) not in claims:
                    result.claims.append(_claim(sts, template, index))
            result.create.append(_pod(sts, index, node))
            if monotonic:
                return True
        elif (terminating(pod) or not controllers.is_ready(pod)) and monotonic:
            return True
    return False


def _condemned(by_ordinal: dict[int, dict[str, Any]], replicas: int, monotonic: bool, result: Plan) -> bool:
    """Delete ordinals at or beyond `replicas`, highest first; True when a monotonic set must wait."""
    condemned = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
    unhealthy = [o for o in sorted(condemned) if not controllers.is_ready(by_ordinal[o])]
    for index in condemned:
        pod = by_ordinal[index]
        if terminating(pod):
            if monotonic:
                return True
            continue
        if monotonic and not controllers.is_ready(pod) and index != (unhealthy[0] if unhealthy else None):
            return True
        result.delete.append(pod)
        if monotonic:
            return True
    return False


def _roll(by_ordinal: dict[int, dict[str, Any]], replicas: int, update: str, result: Plan) -> None:
    """RollingUpdate (partition 0): replace the highest ordinal not at the update revision, one at a time."""
    for index in reversed(range(replicas)):
        pod = by_ordinal.get(index)
        if pod is None:
            return
        if _revision_of(pod) != update and not terminating(pod):
            result.delete.append(pod)
            return
        if not controllers.is_ready(pod):
            return


def _revision_of(pod: dict[str, Any]) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)


def _pod(sts: dict[str, Any], index: int, node: str) -> dict[str, Any]:
    template = json.loads(json.dumps(sts["spec"]["template"]))
    meta = template.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{index}"
    labels = {**(meta.get("labels") or {}), REVISION_LABEL: revision(sts), POD_NAME_LABEL: name}
    labels[INDEX_LABEL] = str(index)
    spec = {**template["spec"], "nodeName": node, "hostname": name}
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claimed = {
        t["metadata"]["name"]: claim_name(sts, t, index)
        for t in sts["spec"].get("volumeClaimTemplates") or []
    }
    volumes = [v for v in spec.get("volumes") or [] if v["name"] not in claimed]
    volumes += [
        {"name": volume, "persistentVolumeClaim": {"claimName": claim}} for volume, claim in claimed.items()
    ]
    spec["volumes"] = volumes
    return controllers.controlled_pod(sts, name, labels, meta, spec)


def _claim(sts: dict[str, Any], template: dict[str, Any], index: int) -> dict[str, Any]:
    selector = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    metadata: dict[str, Any] = {
        "name": claim_name(sts, template, index),
        "namespace": sts["metadata"]["namespace"],
        "labels": {**(template["metadata"].get("labels") or {}), **selector},
    }
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    if policy.get("whenDeleted") == "Delete":
        metadata["ownerReferences"] = [controllers.owner_reference(sts, controller=False)]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": template["spec"],
    }


def status(sts: dict[str, Any], pods: list[dict[str, Any]], update: str, replicas: int) -> dict[str, Any]:
    live = [p for p in pods if not terminating(p)]
    ready = sum(1 for p in pods if controllers.is_ready(p) and not terminating(p))
    current = (sts.get("status") or {}).get("currentRevision") or update
    updated = sum(1 for p in live if _revision_of(p) == update)
    found = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": sum(1 for p in live if _revision_of(p) == current),
        "updatedReplicas": updated,
        "currentRevision": current,
        "updateRevision": update,
    }
    if updated == len(pods) == replicas and ready == replicas:
        found["currentRevision"], found["currentReplicas"] = update, updated
    return found
