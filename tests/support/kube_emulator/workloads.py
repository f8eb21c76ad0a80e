"""Controller-like status for workloads: what the Deployment/DaemonSet/... controllers would report once
pods are running (the emulator runs no controllers, so tests set it explicitly)."""

from __future__ import annotations

from typing import Any


def status_for(obj: dict[str, Any], ready: int | None) -> dict[str, Any]:
    generation = obj["metadata"].get("generation", 1)
    if obj["kind"] == "DaemonSet":
        desired = 1 if ready is None else max(ready, 1)
        count = desired if ready is None else ready
        return {
            "observedGeneration": generation,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "updatedNumberScheduled": desired,
            "numberReady": count,
            "numberAvailable": count,
            "numberUnavailable": desired - count,
            "numberMisscheduled": 0,
        }
    desired = (obj.get("spec") or {}).get("replicas", 1)
    count = desired if ready is None else ready
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": desired,
        "updatedReplicas": desired,
        "readyReplicas": count,
        "availableReplicas": count,
    }
    if desired - count:
        status["unavailableReplicas"] = desired - count
    if obj["kind"] == "Deployment":
        available = "True" if count >= desired else "False"
        status["conditions"] = [
            {
                "type": "Available",
                "status": available,
                "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
            },
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ]
    return status
