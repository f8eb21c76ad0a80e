"""Which child events need their pipeline reconciled (pure, in memory).

The operator watches its children (by the pipeline label) so that a deleted or edited child is restored
at once instead of at the next drift check, and so that a workload's readiness reaches the pipeline's
status as soon as the workload controller reports it. Reacting to every child event would reconcile
after each of the operator's own writes, so the index remembers what each child should look like and
the workload status the status was last computed from, and only a difference asks for a reconcile:

- a remembered child was deleted;
- a remembered child no longer matches what was applied (the same test apply uses: an empty patch);
- a remembered workload's status changed.

Children the index does not know (stale ones, or any before the first reconcile after a restart) are
left to the drift check. Desired children are remembered *before* they are applied, so an event that
arrives while a reconcile is still running is judged against the new desired state; a workload whose
status the operator has not read yet counts as changed (one extra, write-free reconcile at most).

The index also lists the pipelines the operator knows, for the periodic drift check.
"""

from __future__ import annotations

from typing import Any

from otlp_operator import naming
from otlp_operator.reconcile import merge

ChildKey = tuple[str, str, str]  # kind, namespace, name
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_UNREAD = object()
#: The workload status fields the pipeline's status is computed from; other changes are not worth a reconcile.
_STATUS_FIELDS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "desiredNumberScheduled",
    "updatedNumberScheduled",
    "numberReady",
    "numberAvailable",
    "currentRevision",
    "updateRevision",
)


def status_digest(workload: dict[str, Any]) -> tuple[Any, ...]:
    """What of a workload's status matters to the pipeline's status (counts and condition reasons)."""
    found = workload.get("status") or {}
    reasons = sorted((str(c.get("type")), str(c.get("reason"))) for c in found.get("conditions") or [])
    return (*(found.get(field) for field in _STATUS_FIELDS), tuple(reasons))


def key_of(obj: dict[str, Any]) -> ChildKey:
    metadata = obj.get("metadata") or {}
    return str(obj.get("kind")), str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class ChildIndex:
    """Desired children per pipeline, and the workload status each pipeline status was built from."""

    def __init__(self) -> None:
        self._desired: dict[ChildKey, tuple[naming.PipelineKey, dict[str, Any]]] = {}
        self._statuses: dict[ChildKey, Any] = {}
        self._by_pipeline: dict[naming.PipelineKey, set[ChildKey]] = {}

    def remember(self, pipeline: naming.PipelineKey, desired: list[dict[str, Any]]) -> None:
        """Record the children about to be applied for `pipeline` (replacing what was known before)."""
        self.forget(pipeline)
        keys = set()
        for obj in desired:
            key = key_of(obj)
            self._desired[key] = (pipeline, obj)
            keys.add(key)
        self._by_pipeline[pipeline] = keys

    def know(self, pipeline: naming.PipelineKey) -> None:
        """Keep `pipeline` in the drift check even while it has no desired children (invalid spec)."""
        self._by_pipeline.setdefault(pipeline, set())

    def observed(self, workload: dict[str, Any]) -> None:
        """Record the workload status the pipeline's status was just computed from."""
        self._statuses[key_of(workload)] = status_digest(workload)

    def pipelines(self) -> list[naming.PipelineKey]:
        """Every pipeline the operator has reconciled and not seen deleted."""
        return sorted(self._by_pipeline, key=lambda key: (key.namespace, key.name))

    def forget(self, pipeline: naming.PipelineKey) -> None:
        """Drop everything known about `pipeline` (deleted, or its spec became invalid)."""
        for key in self._by_pipeline.pop(pipeline, set()):
            self._desired.pop(key, None)
            self._statuses.pop(key, None)

    def owner_to_reconcile(self, event_type: str, obj: dict[str, Any]) -> naming.PipelineKey | None:
        """The pipeline to reconcile because of this watch event on a child, or None."""
        key = key_of(obj)
        entry = self._desired.get(key)
        if entry is None:
            return None
        pipeline, desired = entry
        if event_type == "DELETED" or merge.patch_for(desired, obj):
            return pipeline
        if key[0] in WORKLOAD_KINDS and status_digest(obj) != self._statuses.get(key, _UNREAD):
            return pipeline
        return None
