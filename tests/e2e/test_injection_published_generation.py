"""While a sidecar pipeline's edit cannot be published (its reconcile keeps failing), pods asking for it
get the previous spec's agent with the previous spec's ConfigMap, never the new ports with the old config;
once the edit is published, they get the new agent with the new ConfigMap.

The real operator (kopf, its webhooks) against the emulator; pods created with the real kubectl. The
reconcile is made to fail with a ChildConflict: the ConfigMap name the edit needs is taken by an object
another controller owns.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from otlp_agent.api import loader
from otlp_operator.manifests import configmap

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


def agent_of(cluster: Cluster, name: str) -> tuple[dict[str, int], str]:
    """The injected agent's ports by name, and the ConfigMap it mounts."""
    stored = cluster.get("pods", name) or {}
    (agent,) = stored["spec"]["initContainers"]
    (mounted,) = [v["configMap"]["name"] for v in stored["spec"]["volumes"] if "configMap" in v]
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    assert ports[agent["startupProbe"]["httpGet"]["port"]] == ports["metrics"]
    return ports, mounted


def telemetry_port(cluster: Cluster, config_map: str) -> int:
    """The port the agent reading that ConfigMap serves /readyz on."""
    found = cluster.get("configmaps", config_map) or {}
    (text,) = found["data"].values()
    return int(loader.load_document(yaml.safe_load(text)).spec.telemetry.port)


def foreign(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"]}
    reference |= {"uid": owner["metadata"]["uid"], "controller": True}
    meta = {"name": name, "namespace": NAMESPACE, "ownerReferences": [reference]}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}


def test_an_edit_that_cannot_be_published_keeps_pods_on_the_previous_consistent_agent(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True, drift_interval=1.0)
    with operator_running(config):
        agent = pipeline("agent")
        apply_yaml(cluster, agent)
        before = published(cluster, "agent")

        edited = pipeline("agent", telemetry={"port": 9999})
        needed = configmap.name(loader.load_document(edited), IMAGE)
        apply_yaml(
            cluster,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "someone", "namespace": NAMESPACE},
            },
        )
        apply_yaml(cluster, foreign(needed, cluster.get("configmaps", "someone") or {}))
        apply_yaml(cluster, edited)
        cluster.wait_for(
            lambda: cluster.condition("agent", "Degraded").get("reason") == "ChildConflict",
            what="the edit's reconcile to fail",
        )

        create(cluster, pod("during", inject="agent"))
        ports, mounted = agent_of(cluster, "during")
        assert mounted == before
        assert ports["metrics"] == telemetry_port(cluster, before) == 8888

        cluster.kubectl("delete", "configmap", needed, "-n", NAMESPACE)
        cluster.wait_for(
            lambda: (cluster.status("agent").get("configRollout") or {}).get("configMap") == needed,
            timeout=30,
            what="the edit published at the next drift check",
        )
        cluster.wait_for(
            lambda: (
                (cluster.status("agent").get("configRollout") or {}).get("generation")
                == (cluster.get("otlpp", "agent") or {})["metadata"]["generation"]
            ),
            what="the published generation",
        )
        create(cluster, pod("after", inject="agent"))
        ports, mounted = agent_of(cluster, "after")
        assert mounted == needed
        assert ports["metrics"] == telemetry_port(cluster, needed) == 9999
