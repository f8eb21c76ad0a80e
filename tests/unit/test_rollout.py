"""Stale-sidecar rollouts: which workloads are stale, the restart patch, the rate limit, and one pass
against a scripted API client (the operator's own `kube.Kube` interface)."""

from __future__ import annotations

import copy
from typing import Any

from otlp_operator.injection import transform
from otlp_operator.reconcile import sidecar_restarts

from tests.support.fake_clock import FakeClock
from tests.support.injection_inputs import IMAGE, NEW, bare_pod, deployment_pod, pipeline


def injected(pod: dict[str, Any], config_map: str, name: str = "agent") -> dict[str, Any]:
    found = transform.inject(
        pod, pipeline(name=name), cluster_version=NEW, config_map=config_map, image=IMAGE
    )
    found["metadata"].setdefault("name", "web-7d4b9c8f5-abcde")
    return found


def stateful_pod() -> dict[str, Any]:
    pod = bare_pod("db-0")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": True}
    ]
    return pod


def test_pods_mounting_an_old_config_map_name_their_deployment_once_and_current_pods_nothing() -> None:
    pods = [
        injected(deployment_pod(), "old"),
        injected(deployment_pod(), "old"),
        injected(stateful_pod(), "new"),
    ]
    workloads, unrollable = sidecar_restarts.stale(pods, "shop", "agent", "new")
    assert workloads == [sidecar_restarts.WorkloadRef("Deployment", "shop", "web")]
    assert unrollable == []


def test_pods_of_another_pipeline_or_being_deleted_are_not_stale() -> None:
    other = injected(deployment_pod(), "old", name="other")
    leaving = injected(stateful_pod(), "old")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert sidecar_restarts.stale([other, leaving], "shop", "agent", "new") == ([], [])


def test_stale_pods_without_a_restartable_workload_are_reported_not_restarted() -> None:
    job_pod = bare_pod("report-x1")
    job_pod["metadata"]["ownerReferences"] = [
        {"kind": "Job", "name": "report", "uid": "j", "controller": True}
    ]
    workloads, unrollable = sidecar_restarts.stale(
        [injected(bare_pod("debug"), "old"), injected(job_pod, "old")], "shop", "agent", "new"
    )
    assert workloads == []
    assert unrollable == ["Pod shop/debug", "Pod shop/report-x1"]


def test_the_restart_patch_is_kubectl_rollout_restarts_annotation_plus_the_config_map() -> None:
    patch = sidecar_restarts.restart_patch("abc", "2026-11-21T20:00:00Z")
    assert patch == {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "kubectl.kubernetes.io/restartedAt": "2026-11-21T20:00:00Z",
                        "telemetry.otlp-operator.io/restarted-for-config": "abc",
                    }
                }
            }
        }
    }


def test_the_limiter_allows_a_burst_then_one_restart_per_interval() -> None:
    clock = FakeClock()
    limiter = sidecar_restarts.Limiter(burst=2, interval=10.0, clock=clock)
    assert [limiter.take() for _ in range(3)] == [True, True, False]
    assert limiter.wait() == 10.0
    clock.now = 4.0
    assert not limiter.take() and limiter.wait() == 6.0
    clock.now = 10.0
    assert limiter.take() and not limiter.take()
    clock.now = 1000.0
    assert [limiter.take() for _ in range(3)] == [True, True, False]  # never more than the burst


class ScriptedKube:
    """The calls `sidecar_restarts.roll` makes, answered from dicts; patches are recorded and applied."""

    def __init__(self, pods: list[dict[str, Any]], workloads: dict[tuple[str, str, str], dict[str, Any]]):
        self.pods, self.workloads = pods, workloads
        self.patched: list[tuple[str, str, str]] = []
        self.listed: list[tuple[str, str]] = []

    async def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.listed.append((namespace, selector))
        return [p for p in self.pods if p["metadata"]["namespace"] == namespace]

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.workloads.get((kind, namespace, name)))

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patched.append((kind, namespace, name))
        template = self.workloads[(kind, namespace, name)]["spec"]["template"]
        template.setdefault("metadata", {}).setdefault("annotations", {}).update(
            patch["spec"]["template"]["metadata"]["annotations"]
        )
        return self.workloads[(kind, namespace, name)]


def workload() -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {}}}}


async def test_a_pass_restarts_within_the_limit_leaves_the_rest_pending_and_never_restarts_twice() -> None:
    pods = [injected(deployment_pod(), "old"), injected(stateful_pod(), "old")]
    client = ScriptedKube(
        pods, {("Deployment", "shop", "web"): workload(), ("StatefulSet", "shop", "db"): workload()}
    )
    limiter = sidecar_restarts.Limiter(burst=1, interval=60.0, clock=FakeClock())
    first = await sidecar_restarts.roll(client, ("shop", "agent"), ["shop"], "new", limiter, "t1")  # type: ignore[arg-type]
    assert [str(r) for r in first.restarted] == ["Deployment shop/web"]
    assert [str(r) for r in first.pending] == ["StatefulSet shop/db"]
    assert client.listed == [("shop", "telemetry.otlp-operator.io/injected=agent")]

    limiter = sidecar_restarts.Limiter(burst=5, interval=60.0, clock=FakeClock())
    second = await sidecar_restarts.roll(client, ("shop", "agent"), ["shop"], "new", limiter, "t2")  # type: ignore[arg-type]
    assert [str(r) for r in second.restarted] == ["StatefulSet shop/db"]
    assert [str(r) for r in second.already] == ["Deployment shop/web"]  # its pods are still old: in progress
    assert client.patched == [("Deployment", "shop", "web"), ("StatefulSet", "shop", "db")]
    status = second.as_status("t2")
    assert (status["restartedCount"], status["inProgress"], status["pendingCount"]) == (1, 1, 0)
