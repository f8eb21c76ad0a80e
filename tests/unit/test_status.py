"""The OTLPPipeline status: rollout reading, the conditions, transition times and Events."""

from __future__ import annotations

from typing import Any

from otlp_agent.api import memory_fit
from otlp_operator.reconcile import status

from tests.support.status_cases import ENDPOINTS, T0, T1, by_type


def deployment(desired: int = 2, generation: int = 3, **state: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"generation": generation},
        "spec": {"replicas": desired},
        "status": state,
    }


def rolled_out(replicas: int = 2, ready: int = 2) -> dict[str, Any]:
    return deployment(
        replicas,
        observedGeneration=3,
        replicas=replicas,
        updatedReplicas=replicas,
        readyReplicas=ready,
        availableReplicas=ready,
    )


def observe(**kwargs: Any) -> status.Observation:
    base: dict[str, Any] = {"generation": 3, "config_hash": "abc", "endpoints": ENDPOINTS, "selector": "a=b"}
    base["memory"] = memory_fit.Fit("spec.resources.limits.memory", "512Mi", 256 * 2**20)
    return status.Observation(**{**base, **kwargs})


def test_a_fully_rolled_out_gateway_is_ready_and_reports_counts_endpoints_and_hash() -> None:
    found, _ = status.compute(observe(workload=rolled_out()), {}, T0)
    conditions = by_type(found)
    assert [c["type"] for c in found["conditions"]] == list(status.CONDITION_TYPES)
    assert {t: (c["status"], c["reason"]) for t, c in conditions.items()} == {
        "ConfigValid": ("True", "Valid"),
        "Ready": ("True", "AgentsReady"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
        "ReferencesResolved": ("True", "NoReferences"),
        "ConfigApplied": ("False", "NotPublished"),
        "MemoryFits": ("True", "Fits"),
    }
    assert conditions["Ready"]["message"] == "2/2 agents ready"
    assert (found["replicas"], found["readyReplicas"], found["observedGeneration"]) == (2, 2, 3)
    assert (found["endpoints"], found["configHash"], found["selector"]) == (ENDPOINTS, "abc", "a=b")
    assert all(c["observedGeneration"] == 3 for c in found["conditions"])


def test_a_workload_the_controller_has_not_seen_yet_is_progressing_not_ready() -> None:
    found, _ = status.compute(observe(workload=deployment(observedGeneration=2, readyReplicas=2)), {}, T0)
    conditions = by_type(found)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "AgentsNotReady")
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "True",
        "RollingOut",
    )
    assert "see the new spec" in conditions["Progressing"]["message"]


def test_rollout_follows_kubectl_rollout_status() -> None:
    half = deployment(
        observedGeneration=3, replicas=3, updatedReplicas=1, readyReplicas=2, availableReplicas=2
    )
    assert status.rollout(half) == status.Rollout(False, 2, 2, "1 of 2 agents updated")
    old_left = deployment(
        observedGeneration=3, replicas=3, updatedReplicas=2, readyReplicas=3, availableReplicas=3
    )
    assert status.rollout(old_left).message == "1 old agents pending termination"
    unavailable = deployment(
        observedGeneration=3, replicas=2, updatedReplicas=2, readyReplicas=1, availableReplicas=1
    )
    assert status.rollout(unavailable).message == "1 of 2 updated agents available"
    assert status.rollout(rolled_out()).done


def test_a_daemonset_counts_scheduled_nodes() -> None:
    daemonset = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberReady": 2,
            "numberAvailable": 2,
        },
    }
    found, _ = status.compute(observe(workload=daemonset), {}, T0)
    assert (found["replicas"], found["readyReplicas"]) == (3, 2)
    assert by_type(found)["Ready"]["message"].startswith("2/3 agents ready")
    daemonset["status"].update(numberReady=3, numberAvailable=3)
    assert by_type(status.compute(observe(workload=daemonset), {}, T0)[0])["Ready"]["status"] == "True"


def test_a_deployment_past_its_progress_deadline_is_degraded() -> None:
    stuck = rolled_out(ready=1)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    conditions = by_type(status.compute(observe(workload=stuck), {}, T0)[0])
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == (
        "True",
        "ProgressDeadlineExceeded",
    )
    assert conditions["Progressing"]["reason"] == "ProgressDeadlineExceeded"


def test_an_invalid_spec_says_why_and_keeps_what_the_running_agents_have() -> None:
    previous, _ = status.compute(observe(workload=rolled_out()), {}, T0)
    invalid = status.Observation(
        generation=4,
        problems=("spec.exporters[0].endpoint: bad", "spec.replicas: too many"),
        workload=rolled_out(),
        config_hash="abc",
    )
    found, transitions = status.compute(invalid, previous, T1)
    conditions = by_type(found)
    assert conditions["ConfigValid"]["status"] == "False"
    assert conditions["ConfigValid"]["message"] == "spec.exporters[0].endpoint: bad; spec.replicas: too many"
    assert (conditions["Degraded"]["reason"], conditions["Ready"]["status"]) == ("InvalidSpec", "True")
    assert "last good config (abc)" in conditions["Degraded"]["message"]
    assert (found["endpoints"], found["selector"], found["observedGeneration"]) == (ENDPOINTS, "a=b", 4)
    assert {(t.condition.type, t.warning) for t in transitions} == {("ConfigValid", True), ("Degraded", True)}


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    first, transitions = status.compute(observe(workload=rolled_out(ready=1)), {}, T0)
    assert len(transitions) == len(status.CONDITION_TYPES)  # the first report: every condition
    second, transitions = status.compute(observe(workload=rolled_out(ready=1)), first, T1)
    assert transitions == [] and second == first
    third, transitions = status.compute(observe(workload=rolled_out()), second, T1)
    assert by_type(third)["Ready"]["lastTransitionTime"] == T1
    assert by_type(third)["ConfigValid"]["lastTransitionTime"] == T0
    assert [(t.condition.type, t.warning) for t in transitions] == [("Ready", False), ("Progressing", False)]


def test_a_reason_change_without_a_status_change_is_reported_but_keeps_the_time() -> None:
    failing = observe(workload=rolled_out(), apply_error=("ApplyFailed", "500: etcd; retrying"))
    first, _ = status.compute(failing, {}, T0)
    conflict = observe(workload=rolled_out(), apply_error=("ChildConflict", "Service x is controlled by Y"))
    second, transitions = status.compute(conflict, first, T1)
    assert by_type(second)["Degraded"]["lastTransitionTime"] == T0
    assert [(t.condition.reason, t.warning) for t in transitions] == [("ChildConflict", True)]
    assert transitions[0].message == "Degraded is True: Service x is controlled by Y"


def test_ready_agents_becoming_unready_is_a_warning() -> None:
    ready, _ = status.compute(observe(workload=rolled_out()), {}, T0)
    _, transitions = status.compute(observe(workload=rolled_out(ready=1)), ready, T1)
    assert [(t.condition.type, t.warning) for t in transitions] == [
        ("Ready", True),
        ("Progressing", False),
    ]


def test_a_sidecar_pipeline_is_ready_once_its_config_is_published() -> None:
    found, _ = status.compute(observe(sidecar=True, endpoints={"grpc": None, "http": None}), {}, T0)
    conditions = by_type(found)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("True", "ConfigPublished")
    assert "replicas" not in found and conditions["Degraded"]["status"] == "False"


def test_a_missing_workload_is_not_ready() -> None:
    conditions = by_type(status.compute(observe(), {}, T0)[0])
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "WorkloadMissing")
