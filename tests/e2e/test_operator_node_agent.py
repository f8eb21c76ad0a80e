"""The node-agent example (a DaemonSet) with the real operator and kubectl, and a change of mode that
replaces the workload of the previous mode."""

from __future__ import annotations

import copy

from tests.support.operator_harness import (
    EXAMPLES,
    Cluster,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
)

SELECTOR = "telemetry.otlp-operator.io/pipeline=node-agent"


def condition(cluster: Cluster, kind: str) -> tuple[str | None, str | None]:
    found = cluster.condition("node-agent", kind)
    return found.get("status"), found.get("reason")


def test_the_node_agent_example_runs_as_a_daemonset_with_the_default_ports(cluster: Cluster) -> None:
    with operator_running(config_for_tests()):
        cluster.kubectl("apply", "-f", str(EXAMPLES / "node-agent.yaml"))
        daemonset = cluster.wait_for(lambda: cluster.get("daemonsets", "node-agent-agent"), what="DaemonSet")
        pod = daemonset["spec"]["template"]["spec"]
        assert pod["tolerations"] == [{"operator": "Exists"}]
        (agent,) = pod["containers"]
        assert {p["name"]: p["containerPort"] for p in agent["ports"]} == {
            "otlp-grpc": 4317,
            "otlp-http": 4318,
            "metrics": 8888,
        }
        service = cluster.wait_for(lambda: cluster.get("services", "node-agent-otlp"), what="Service")
        assert [p["port"] for p in service["spec"]["ports"]] == [4317, 4318, 8888]
        assert cluster.get("deployments", "node-agent-agent") is None
        cluster.workload_ready("daemonsets", "node-agent-agent")
        cluster.wait_for(lambda: condition(cluster, "Ready") == ("True", "AgentsReady"), what="Ready")
        status = cluster.status("node-agent")
        assert status["replicas"] == status["readyReplicas"] >= 1
        assert status["endpoints"]["grpc"] == "node-agent-otlp.observability.svc:4317"


def test_changing_the_mode_replaces_the_daemonset_with_a_deployment(cluster: Cluster) -> None:
    manifest = example("node-agent.yaml")
    with operator_running(config_for_tests()):
        apply_yaml(cluster, manifest)
        cluster.wait_for(lambda: cluster.get("daemonsets", "node-agent-agent"), what="DaemonSet")
        gateway = copy.deepcopy(manifest)
        gateway["spec"].update(mode="deployment", replicas=3)
        del gateway["spec"]["tolerations"]
        apply_yaml(cluster, gateway)
        deployment = cluster.wait_for(
            lambda: cluster.get("deployments", "node-agent-agent"), what="Deployment"
        )
        assert deployment["spec"]["replicas"] == 3
        cluster.wait_for(
            lambda: cluster.get("daemonsets", "node-agent-agent") is None, what="DaemonSet pruned"
        )
        cluster.wait_for(lambda: cluster.get("poddisruptionbudgets", "node-agent-agent"), what="PDB for 3")
        labels = cluster.get("services", "node-agent-otlp")["metadata"]["labels"]  # type: ignore[index]
        assert labels["app.kubernetes.io/component"] == "gateway"  # what the agents are, no longer the mode
        events = cluster.events("node-agent")
        assert any("deleted DaemonSet node-agent-agent" in e["message"] for e in events)
