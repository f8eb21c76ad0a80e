"""What `kubectl get otlpp` shows beside the conditions: ready agents "x/y", the agent version, and for
sidecar pipelines the injected pods by the ConfigMap they mount (bounded however many pods and ConfigMaps
there are)."""

from __future__ import annotations

from typing import Any

from otlp_operator import naming
from otlp_operator.reconcile import injected_pods, status

KEY = naming.PipelineKey("obs", "agent")
T0 = "2026-01-01T00:00:00Z"


def injected(
    name: str, config_map: str, *, pipeline: str = "obs/agent", ready: bool = False
) -> dict[str, Any]:
    annotations = {
        "telemetry.otlp-operator.io/injected-pipeline": pipeline,
        "telemetry.otlp-operator.io/agent-config": config_map,
    }
    statuses = [{"name": "otlp-agent", "ready": ready}, {"name": "migrate", "ready": True}]
    return {
        "metadata": {"name": name, "annotations": annotations},
        "status": {"initContainerStatuses": statuses},
    }


def test_pods_are_counted_by_config_map_with_ready_agents_and_the_current_share() -> None:
    pods = [
        injected("a", "new", ready=True),
        injected("b", "old"),
        injected("c", "old", ready=True),
        injected("d", "new", pipeline="obs/other"),  # another pipeline of the same name label
    ]
    gone = injected("e", "new", ready=True)
    gone["metadata"]["deletionTimestamp"] = T0
    assert injected_pods.summarize([*pods, gone], KEY, "new") == {
        "pods": 3,
        "ready": 2,
        "current": 1,
        "byConfigMap": [{"configMap": "old", "pods": 2}, {"configMap": "new", "pods": 1}],
    }


def test_a_regular_agent_container_counts_as_ready_too() -> None:
    pod = injected("a", "h")
    pod["status"] = {"containerStatuses": [{"name": "otlp-agent", "ready": True}]}
    assert injected_pods.summarize([pod], KEY, "h")["ready"] == 1


def test_the_config_map_list_is_bounded_and_the_counts_stay_complete() -> None:
    pods = [injected(f"p{i}", f"hash-{i:02d}") for i in range(25)] + [injected("x", "hash-24")]
    found = injected_pods.summarize(pods, KEY, "hash-24")
    assert found["pods"] == 26 and found["current"] == 2
    assert len(found["byConfigMap"]) == injected_pods.HASH_LIMIT
    assert found["byConfigMap"][0] == {"configMap": "hash-24", "pods": 2}


def rolled_out(ready: int, desired: int) -> dict[str, Any]:
    state = {"observedGeneration": 1, "replicas": desired, "updatedReplicas": desired}
    state |= {"readyReplicas": ready, "availableReplicas": ready}
    return {
        "kind": "Deployment",
        "metadata": {"generation": 1},
        "spec": {"replicas": desired},
        "status": state,
    }


def test_a_gateway_shows_ready_of_desired_agents_and_its_version() -> None:
    obs = status.Observation(1, workload=rolled_out(1, 3), config_hash="h", agent_version="0.7.1")
    found, _ = status.compute(obs, {}, T0)
    assert (found["readyAgents"], found["agentVersion"]) == ("1/3", "0.7.1")
    assert "injected" not in found


def test_a_sidecar_shows_ready_agents_of_injected_pods() -> None:
    census = {"pods": 4, "ready": 3, "current": 4, "byConfigMap": [{"configMap": "h", "pods": 4}]}
    obs = status.Observation(1, sidecar=True, config_hash="h", agent_version="0.7.1", injected=census)
    found, _ = status.compute(obs, {}, T0)
    assert (found["readyAgents"], found["injected"]) == ("3/4", census)


def test_while_nothing_is_applied_the_running_agents_version_and_census_are_kept() -> None:
    census = {"pods": 2, "ready": 2, "current": 2, "byConfigMap": [{"configMap": "h", "pods": 2}]}
    previous = {"agentVersion": "0.7.1", "injected": census, "configHash": "h"}
    held = status.Observation(2, problems=("spec.replicas: bad",), sidecar=True, config_hash="h")
    found, _ = status.compute(held, previous, T0)
    assert (found["agentVersion"], found["injected"], found["readyAgents"]) == ("0.7.1", census, "2/2")
