"""Applying a StatefulSet whose claim templates changed: the API server refuses to change them, so the
operator deletes the StatefulSet leaving its pods and claims (Orphan) and creates it again; other changes
are patched in place."""

from __future__ import annotations

import copy
from typing import Any

from otlp_agent.api import loader, spec
from otlp_operator import manifests
from otlp_operator.reconcile import apply, merge

from tests.support import manifest_cases as support

UID = support.OWNER["metadata"]["uid"]


def statefulset(size: str = "1Gi", cpu: str = "100m") -> dict[str, Any]:
    body = {
        "mode": "statefulset",
        "replicas": 3,
        "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}},
        "exporters": [{**support.EXPORTER, "queue": {"type": "persistent", "storageSize": size}}],
    }
    pipeline = loader.OTLPPipeline("gw", "obs", spec.OTLPPipelineSpec.model_validate(body))
    (found,) = [
        o
        for o in manifests.build_all(pipeline, agent_image=support.IMAGE, owner=support.OWNER)
        if o["kind"] == "StatefulSet"
    ]
    return found


class Server:
    """The one StatefulSet the API server holds, and the calls made."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.live: dict[str, Any] | None = merge.with_last_applied(live)
        self.calls: list[tuple[str, ...]] = []

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.live)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create",))
        self.live = obj
        return obj

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", *sorted(patch.get("spec", {}))))
        return {}

    async def delete(self, kind: str, namespace: str, name: str, *, orphan: bool = False) -> None:
        self.calls.append(("delete", "orphan" if orphan else "background"))
        self.live = None


async def test_a_new_queue_size_replaces_the_statefulset_keeping_its_pods_and_claims() -> None:
    server = Server(statefulset("1Gi"))
    applied = apply.Applied()
    await apply.apply_all(server, [statefulset("2Gi")], UID, applied)  # type: ignore[arg-type]
    assert server.calls == [("delete", "orphan"), ("create",)]
    assert applied.changes == ["replaced StatefulSet gw-agent (its pods and claims kept)"]
    assert server.live is not None
    assert server.live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"


async def test_a_pod_level_change_is_patched_in_place() -> None:
    server = Server(statefulset(cpu="100m"))
    await apply.apply_all(server, [statefulset(cpu="200m")], UID, apply.Applied())  # type: ignore[arg-type]
    assert server.calls == [("patch", "template")]
