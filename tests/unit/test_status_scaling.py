"""The status of the scaling features: a StatefulSet's rollout read like `kubectl rollout status`, and
`ConfigApplied` / `status.configRollout` from what the agents said about the published config."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_operator.reconcile import config_rollout, config_status, status

from tests.support.status_cases import ENDPOINTS, T0, T1, by_type

PUBLISHED = config_status.Rollout("abc1234567", "gw-config-0f0f0f0f0f", T0, T1)


def statefulset(desired: int = 3, **state: Any) -> dict[str, Any]:
    defaults = {
        "observedGeneration": 2,
        "replicas": desired,
        "updatedReplicas": desired,
        "readyReplicas": desired,
        "currentRevision": "gw-agent-1",
        "updateRevision": "gw-agent-1",
    }
    return {
        "kind": "StatefulSet",
        "metadata": {"generation": 2},
        "spec": {"replicas": desired},
        "status": {**defaults, **state},
    }


@pytest.mark.parametrize(
    ("state", "done", "message"),
    [
        ({}, True, "3/3 agents ready"),
        ({"observedGeneration": 1}, False, "waiting for the workload controller to see the new spec"),
        ({"updatedReplicas": 2, "updateRevision": "gw-agent-2"}, False, "2 of 3 agents updated"),
        ({"readyReplicas": 2}, False, "2 of 3 updated agents ready"),
        ({"replicas": 4}, False, "1 agents draining"),
        ({"updateRevision": "gw-agent-2"}, False, "waiting for the update revision to become current"),
    ],
)
def test_a_statefulset_rollout_is_done_when_every_replica_is_updated_ready_and_current(
    state: dict[str, Any], done: bool, message: str
) -> None:
    found = status.rollout(statefulset(**state))
    assert (found.done, found.message) == (done, message)


def observe(rollout: config_status.Rollout | None, **kwargs: Any) -> status.Observation:
    return status.Observation(
        2, config_hash="abc1234567", endpoints=ENDPOINTS, workload=statefulset(), rollout=rollout, **kwargs
    )


def applied(**counts: Any) -> tuple[str, str, str]:
    import dataclasses

    found, _ = status.compute(observe(dataclasses.replace(PUBLISHED, **counts)), {}, T0)
    condition = by_type(found)["ConfigApplied"]
    return condition["status"], condition["reason"], condition["message"]


def test_every_agent_running_the_published_config_is_applied_and_shown() -> None:
    import dataclasses

    rollout = dataclasses.replace(PUBLISHED, applied=3)
    found, _ = status.compute(observe(rollout), {}, T0)
    assert by_type(found)["ConfigApplied"]["reason"] == "Applied"
    assert found["configRollout"] == {
        "hash": "abc1234567",
        "configMap": "gw-config-0f0f0f0f0f",
        "publishedAt": T0,
        "generation": 2,  # the spec it was built from (the pod webhook checks it for sidecars)
        "expectedBy": T1,
        "agents": 3,
        "applied": 3,
        "pending": 0,
        "rejected": 0,
        "unreachable": 0,
    }


def test_each_state_of_the_agents_has_its_reason() -> None:
    assert applied(applied=3) == ("True", "Applied", "3/3 agents run config abc1234567")
    assert applied()[:2] == ("True", "NoAgents")
    assert applied(applied=1, pending=2) == (
        "False",
        "Pending",
        f"1/3 agents run config abc1234567; expected on all by {T1}",
    )
    assert applied(applied=1, pending=2, late=True)[1] == "Late"
    assert applied(applied=2, unreachable=1)[:2] == ("False", "Unconfirmed")
    rejected = applied(applied=2, rejections=("gw-agent-1: cannot run here: no such file",))
    assert rejected[:2] == ("False", "Rejected") and "gw-agent-1: cannot run here" in rejected[2]


def test_an_agent_that_cannot_apply_the_config_degrades_the_pipeline() -> None:
    import dataclasses

    rollout = dataclasses.replace(PUBLISHED, applied=2, rejections=("gw-agent-2: invalid: x",))
    found, transitions = status.compute(observe(rollout), {}, T0)
    degraded = by_type(found)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ConfigRejected")
    assert found["configRollout"]["rejections"] == ["gw-agent-2: invalid: x"]
    assert any(t.condition.type == "Degraded" and t.warning for t in transitions)


def test_while_nothing_is_applied_the_rollout_and_its_condition_stay_as_they_were() -> None:
    import dataclasses

    before, _ = status.compute(observe(dataclasses.replace(PUBLISHED, applied=3)), {}, T0)
    held = status.Observation(3, problems=("spec.x: bad",), workload=statefulset(), config_hash="abc1234567")
    after, _ = status.compute(held, before, T1)
    assert after["configRollout"] == before["configRollout"]
    assert after["configRollout"]["generation"] == 2  # still the spec the published config came from
    assert by_type(after)["ConfigApplied"] == {**by_type(before)["ConfigApplied"], "observedGeneration": 3}


def test_sidecar_pipelines_publish_without_asking_the_injected_agents() -> None:
    import dataclasses

    rollout = dataclasses.replace(PUBLISHED, sidecar=True)
    assert config_status.condition(rollout)[:2] == (True, "NotTracked")
    assert set(rollout.as_status()) == {"hash", "configMap", "publishedAt", "expectedBy"}


def test_a_config_is_expected_within_seconds_with_pod_refresh_and_a_sync_period_and_a_half_without() -> None:
    assert config_rollout.Settings(refresh_pods=True).bound == 10.0
    assert config_rollout.Settings(refresh_pods=False, kubelet_sync_period=60).bound == 100.0
    assert config_rollout.followup(dataclasses_replace(PUBLISHED, pending=1)) == config_rollout.LOOK_SOON
    assert (
        config_rollout.followup(dataclasses_replace(PUBLISHED, pending=1, late=True))
        == config_rollout.LOOK_LATER
    )
    assert config_rollout.followup(dataclasses_replace(PUBLISHED, applied=2)) is None


def dataclasses_replace(rollout: config_status.Rollout, **changes: Any) -> config_status.Rollout:
    import dataclasses

    return dataclasses.replace(rollout, **changes)


def test_a_sidecar_pipeline_records_the_namespaces_holding_a_copy_of_its_config() -> None:
    import dataclasses

    rollout = dataclasses.replace(PUBLISHED, sidecar=True)
    found, _ = status.compute(
        status.Observation(4, sidecar=True, rollout=rollout, copied_to=("b", "a")), {}, T0
    )
    assert (found["configRollout"]["copiedTo"], found["configRollout"]["generation"]) == (["a", "b"], 4)
    gateway, _ = status.compute(observe(PUBLISHED), {}, T0)
    assert "copiedTo" not in gateway["configRollout"]
