"""A sidecar pipeline says how many pods run its agent and with which pod-level settings (the ConfigMap
each mounts): `status.injected`, the READY column of `kubectl get otlpp` (ready agents / injected pods)
and the VERSION of the agent image. Real operator, pods through the admission chain, counts refreshed by
the drift check."""

from __future__ import annotations

import pathlib

from tests.support.injection_objects import create, pipeline, pod, published
from tests.support.operator_harness import (
    IMAGE,
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)


def agent_ready(cluster: Cluster, name: str) -> None:
    """What the kubelet reports once the native sidecar passed its startup probe."""
    assert cluster.emulator is not None
    statuses = [{"name": "otlp-agent", "ready": True, "restartCount": 0, "image": IMAGE, "imageID": ""}]
    cluster.emulator.set_status(
        "pods", name, NAMESPACE, {"phase": "Running", "initContainerStatuses": statuses}
    )


def test_a_sidecar_pipeline_counts_its_pods_by_config_and_shows_ready_agents(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True, drift_interval=0.3)
    with operator_running(config):
        apply_yaml(cluster, pipeline("agent"))
        old_config_map = published(cluster, "agent")
        create(cluster, pod("web-1", inject="agent"))
        create(cluster, pod("web-2", inject="agent"))
        create(cluster, pod("plain"))  # asked for nothing: not counted
        agent_ready(cluster, "web-1")
        injected = cluster.wait_for(
            lambda: (i := cluster.status("agent").get("injected")) and i["ready"] == 1 and i,
            what="two injected pods counted, one ready",
        )
        assert injected == {
            "pods": 2,
            "ready": 1,
            "current": 2,
            "byConfigMap": [{"configMap": old_config_map, "pods": 2}],
            "unreadableNamespaces": [],
        }
        assert cluster.status("agent")["readyAgents"] == "1/2"

        # A pod-level change (the injected container's resources): another ConfigMap, for new pods only.
        resized = {"injection": {"resources": {"requests": {"cpu": "20m", "memory": "32Mi"}}}}
        apply_yaml(cluster, pipeline("agent", **resized))
        new_config_map = cluster.wait_for(
            lambda: (m := published(cluster, "agent")) != old_config_map and m, what="a new ConfigMap"
        )
        create(cluster, pod("web-3", inject="agent"))
        injected = cluster.wait_for(
            lambda: (i := cluster.status("agent").get("injected")) and i["pods"] == 3 and i,
            what="the new pod counted under the new ConfigMap",
        )
        assert injected["current"] == 1
        assert injected["byConfigMap"] == [
            {"configMap": old_config_map, "pods": 2},
            {"configMap": new_config_map, "pods": 1},
        ]
        header, row = cluster.kubectl("get", "otlpp", "agent", "-n", NAMESPACE).stdout.splitlines()
        assert header.split() == ["NAME", "MODE", "VERSION", "READY", "STATUS", "ENDPOINT", "AGE"]
        assert row.split()[:5] == ["agent", "sidecar", "e2e", "1/3", "ConfigPublished"]
