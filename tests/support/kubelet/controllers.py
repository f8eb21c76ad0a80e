"""The workload controllers, reduced to what the operator's workloads need, generic over pod templates:
which pods a workload should have, which to create or delete next, and the status to report.

A workload kind is described by `Kind` (how many pods it wants, how it rolls): Deployment (`replicas`,
RollingUpdate with maxSurge/maxUnavailable; Recreate), DaemonSet (one pod on the one node, replaced
old-first). A StatefulSet mode can be added as another `Kind`. Pods carry `pod-template-hash` (the hash
of the template), are owned by their workload (so garbage collection deletes them with it) and are
created through the API server, admission included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
from typing import Any

HASH_LABEL = "pod-template-hash"


@dataclasses.dataclass(frozen=True)
class Plan:
    create: list[dict[str, Any]]
    delete: list[dict[str, Any]]
    status: dict[str, Any]


def template_hash(workload: dict[str, Any]) -> str:
    text = json.dumps(workload["spec"]["template"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _count(value: Any, replicas: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def owned(workload: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    uid = workload["metadata"]["uid"]
    return [p for p in pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def plan(workload: dict[str, Any], pods: list[dict[str, Any]], node: str) -> Plan:
    """What to do next for `workload`, given the pods it owns now."""
    kind = workload["kind"]
    desired = 1 if kind == "DaemonSet" else int(workload["spec"].get("replicas", 1))
    current = template_hash(workload)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    new = [p for p in live if p["metadata"].get("labels", {}).get(HASH_LABEL) == current]
    old = [p for p in live if p not in new]
    surge, unavailable = _limits(workload, desired)
    create: list[dict[str, Any]] = []
    delete: list[dict[str, Any]] = []
    ready = sum(1 for p in live if is_ready(p))
    if len(new) > desired:
        delete = sorted(new, key=is_ready)[: len(new) - desired]
    elif len(new) < desired and len(live) < desired + surge:
        create.append(pod_for(workload, current, node))
    if old:
        # An old pod goes when enough pods stay ready without it (or at once when it is not ready).
        unready = [p for p in old if not is_ready(p)]
        if unready:
            delete.append(unready[0])
        elif ready - 1 >= desired - unavailable:
            delete.append(old[0])
    return Plan(create, delete, status(workload, live, new, desired))


def _limits(workload: dict[str, Any], desired: int) -> tuple[int, int]:
    strategy = workload["spec"].get("strategy") or workload["spec"].get("updateStrategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, desired
    rolling = strategy.get("rollingUpdate") or {}
    if workload["kind"] == "DaemonSet":
        return _count(rolling.get("maxSurge", 0), desired, True), max(
            _count(rolling.get("maxUnavailable", 1), desired, True), 0
        )
    surge = _count(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = _count(rolling.get("maxUnavailable", "25%"), desired, False)
    return (max(surge, 1) if unavailable == 0 else surge), unavailable


def pod_for(workload: dict[str, Any], template_hash_: str, node: str) -> dict[str, Any]:
    template = json.loads(json.dumps(workload["spec"]["template"]))
    meta = template.get("metadata") or {}
    name = f"{workload['metadata']['name']}-{template_hash_[:8]}-{secrets.token_hex(3)}"[:63]
    labels = {**(meta.get("labels") or {}), HASH_LABEL: template_hash_}
    return controlled_pod(workload, name, labels, meta, {**template["spec"], "nodeName": node})


def controlled_pod(
    workload: dict[str, Any], name: str, labels: dict[str, str], meta: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    """A Pod `workload` controls, with its template's annotations (`meta`)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": workload["metadata"]["namespace"],
            "labels": labels,
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [owner_reference(workload, controller=True)],
        },
        "spec": spec,
    }


def owner_reference(workload: dict[str, Any], controller: bool) -> dict[str, Any]:
    """What points from an object `workload` made back to it (a controller reference, or a plain one)."""
    found = {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "name": workload["metadata"]["name"],
        "uid": workload["metadata"]["uid"],
    }
    return {**found, "controller": True, "blockOwnerDeletion": True} if controller else found


def status(
    workload: dict[str, Any], live: list[dict[str, Any]], new: list[dict[str, Any]], desired: int
) -> dict[str, Any]:
    generation = workload["metadata"].get("generation", 1)
    ready = sum(1 for p in live if is_ready(p))
    updated_ready = sum(1 for p in new if is_ready(p))
    if workload["kind"] == "DaemonSet":
        return {
            "observedGeneration": generation,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": len(live),
            "updatedNumberScheduled": len(new),
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(desired - ready, 0),
            "numberMisscheduled": 0,
        }
    available = "True" if ready >= desired else "False"
    return {
        "observedGeneration": generation,
        "replicas": len(live),
        "updatedReplicas": len(new),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(desired - ready, 0),
        "conditions": [
            {"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if updated_ready >= desired else "ReplicaSetUpdated",
            },
        ],
    }
