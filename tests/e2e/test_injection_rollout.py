"""Stale sidecars roll, and only when they must: a change of a sidecar pipeline's config alone rewrites the
ConfigMap the sidecars mount (they reload it) and restarts nothing; a pod-level change (here the injected
container's resources) publishes another ConfigMap, and the operator restarts the Deployment of pods
injected for the old one (the `kubectl rollout restart` annotation) and reports it in the pipeline's
status. Real operator, real kubectl, pods through the admission chain."""

from __future__ import annotations

import pathlib
from typing import Any

from tests.support.injection_objects import create, pipeline, pod, published
from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

CONFIG_MAP = "telemetry.otlp-operator.io/agent-config"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TEMPLATE_HASH = "5c9d8f7b6"


def deployment() -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"telemetry.otlp-operator.io/inject": "agent"}},
                "spec": {"containers": [{"name": "app", "image": "registry.test/app:1"}]},
            },
        },
    }


def owned_by(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    reference = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    return {"ownerReferences": [{**reference, "controller": True}]}


def replica_set(owner: dict[str, Any]) -> dict[str, Any]:
    """What the Deployment controller would create (the emulator runs no controllers)."""
    labels = {"app": "web", "pod-template-hash": TEMPLATE_HASH}
    template = {**owner["spec"]["template"], "metadata": {"labels": labels}}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": f"web-{TEMPLATE_HASH}", "namespace": NAMESPACE, **owned_by(owner)},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }


def template_annotations(cluster: Cluster) -> dict[str, str]:
    found = cluster.get("deployments", "web") or {}
    return dict(found["spec"]["template"]["metadata"].get("annotations") or {})


def test_a_pod_level_change_restarts_the_deployment_of_stale_sidecars_and_a_config_change_does_not(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    rolling = {"injection": {"rolloutOnChange": True}}
    with operator_running(config):
        apply_yaml(cluster, pipeline("agent", **rolling))
        old_config_map = published(cluster, "agent")
        create(cluster, deployment())
        web = cluster.get("deployments", "web")
        assert web is not None
        create(cluster, replica_set(web))
        rs = cluster.get("replicasets", f"web-{TEMPLATE_HASH}")
        assert rs is not None
        web_pod = pod(f"web-{TEMPLATE_HASH}-x7k2p", inject="agent", **owned_by(rs))
        web_pod["metadata"]["labels"] = {"app": "web", "pod-template-hash": TEMPLATE_HASH}
        create(cluster, web_pod)
        create(cluster, pod("bare", inject="agent"))
        assert (cluster.get("pods", web_pod["metadata"]["name"]) or {})["metadata"]["annotations"][
            CONFIG_MAP
        ] == old_config_map
        assert RESTARTED_AT not in template_annotations(cluster)

        # The pipeline config alone: the same ConfigMap, rewritten; the sidecars reload it, nothing restarts.
        old_hash = cluster.status("agent")["configHash"]
        reloaded = pipeline("agent", **rolling, processors={"batch": {"timeout": "1s"}})
        apply_yaml(cluster, reloaded)
        config_hash = cluster.wait_for(
            lambda: (h := cluster.status("agent").get("configHash")) != old_hash and h, what="new config hash"
        )
        rewritten = cluster.get("configmaps", old_config_map) or {}
        assert rewritten["metadata"]["annotations"]["telemetry.otlp-operator.io/config-hash"] == config_hash
        assert "timeout: 1s" in rewritten["data"]["pipeline.yaml"]
        assert cluster.status("agent")["configRollout"]["configMap"] == old_config_map
        assert RESTARTED_AT not in template_annotations(cluster) and not cluster.status("agent").get(
            "rollouts"
        )

        # A pod-level change: another ConfigMap, and the pods injected for the old one are stale.
        resized = {
            "injection": {
                "rolloutOnChange": True,
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
            }
        }
        apply_yaml(cluster, pipeline("agent", **resized, processors={"batch": {"timeout": "1s"}}))
        new_config_map = cluster.wait_for(
            lambda: (m := cluster.status("agent")["configRollout"]["configMap"]) != old_config_map and m,
            what="a new ConfigMap",
        )
        annotations = cluster.wait_for(
            lambda: (a := template_annotations(cluster)).get(RESTARTED_AT) and a, what="Deployment restarted"
        )
        assert annotations["telemetry.otlp-operator.io/restarted-for-config"] == new_config_map
        rollouts = cluster.wait_for(lambda: cluster.status("agent").get("rollouts"), what="status.rollouts")
        assert rollouts["configMap"] == new_config_map
        assert rollouts["restarted"] == [f"Deployment {NAMESPACE}/web"]
        assert rollouts["notRestartable"] == [f"Pod {NAMESPACE}/bare"]
        # a later status write by reconcile keeps the report
        cluster.wait_for(lambda: cluster.condition("agent", "Ready").get("status") == "True", what="Ready")
        assert cluster.status("agent").get("rollouts", {}).get("configMap") == new_config_map
