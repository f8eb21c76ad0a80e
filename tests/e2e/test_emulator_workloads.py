"""Workload semantics of the emulator the StatefulSet gateways rely on, through the kubernetes python client:
graceful pod deletion (a bound pod stays, terminating, until its kubelet deletes it with grace 0) and the
StatefulSet fields an update may not change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiException

from tests.support.kube_emulator import ThreadedKubeEmulator


def pod(name: str, node: str | None = "node-1", grace: int = 20) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "x:1"}],
        "terminationGracePeriodSeconds": grace,
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_a_bound_pod_stays_terminating_until_its_kubelet_deletes_it_with_grace_zero(
    kube_sync: ThreadedKubeEmulator, core_api: Any
) -> None:
    core_api.create_namespaced_pod("default", pod("web-0"))
    core_api.delete_namespaced_pod("web-0", "default")
    left = kube_sync.get("pods", "web-0", "default")
    assert left is not None and left["metadata"]["deletionTimestamp"]
    assert left["metadata"]["deletionGracePeriodSeconds"] == 20
    core_api.delete_namespaced_pod("web-0", "default", grace_period_seconds=0)
    assert kube_sync.get("pods", "web-0", "default") is None


def test_an_unbound_or_finished_pod_or_grace_zero_goes_at_once(
    kube_sync: ThreadedKubeEmulator, core_api: Any
) -> None:
    core_api.create_namespaced_pod("default", pod("pending", node=None))
    core_api.delete_namespaced_pod("pending", "default")
    core_api.create_namespaced_pod("default", pod("now"))
    core_api.delete_namespaced_pod("now", "default", grace_period_seconds=0)
    assert (
        kube_sync.get("pods", "pending", "default") is None
        and kube_sync.get("pods", "now", "default") is None
    )


def test_a_shorter_grace_shortens_a_termination_and_a_longer_one_does_not_extend_it(
    kube_sync: ThreadedKubeEmulator, core_api: Any
) -> None:
    core_api.create_namespaced_pod("default", pod("web-1", grace=300))
    core_api.delete_namespaced_pod("web-1", "default")
    long = kube_sync.get("pods", "web-1", "default")["metadata"]["deletionTimestamp"]  # type: ignore[index]
    core_api.delete_namespaced_pod("web-1", "default", grace_period_seconds=5)
    short = kube_sync.get("pods", "web-1", "default")["metadata"]["deletionTimestamp"]  # type: ignore[index]
    assert short < long
    core_api.delete_namespaced_pod("web-1", "default", grace_period_seconds=600)
    assert kube_sync.get("pods", "web-1", "default")["metadata"]["deletionTimestamp"] == short  # type: ignore[index]


def statefulset(size: str) -> dict[str, Any]:
    labels = {"app": "gw"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "gw"},
        "spec": {
            "serviceName": "gw-headless",
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "queue"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
                }
            ],
        },
    }


def test_a_statefulset_update_may_scale_and_change_its_template_but_not_its_claims(
    kube_sync: ThreadedKubeEmulator, api_client: Any
) -> None:
    from kubernetes.client import AppsV1Api

    apps = AppsV1Api(api_client)
    apps.create_namespaced_stateful_set("default", statefulset("1Gi"), _preload_content=False)
    created = kube_sync.get("statefulsets", "gw", "default") or {}
    assert created["spec"]["podManagementPolicy"] == "OrderedReady"
    assert created["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    apps.patch_namespaced_stateful_set(
        "gw",
        "default",
        {"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "gw", "v": "2"}}}}},
        _preload_content=False,
    )
    assert (kube_sync.get("statefulsets", "gw", "default") or {})["spec"]["replicas"] == 3
    with pytest.raises(ApiException) as refused:
        apps.patch_namespaced_stateful_set(
            "gw",
            "default",
            {"spec": {"volumeClaimTemplates": statefulset("2Gi")["spec"]["volumeClaimTemplates"]}},
        )
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'" in message
    with pytest.raises(ApiException):
        apps.patch_namespaced_stateful_set("gw", "default", {"spec": {"serviceName": "other"}})
