"""Restarting the workloads whose injected sidecars are stale (`injection.rolloutOnChange`).

A sidecar mounts the pipeline's ConfigMap of the pod-level settings it was injected with
(`manifests.configmap`: its name ends with their hash). A change of the pipeline config alone rewrites
that ConfigMap and the sidecars reload it: nothing is restarted. A pod-level change (image, ports,
resources, env, Secrets mounted) publishes a ConfigMap of another name that only new pods mount; the pods
injected from the pipeline (found by the `injected` label, in the pipeline's namespace and every namespace
it allows) whose `agent-config` annotation names another ConfigMap are then stale, and their workloads are
restarted the way
`kubectl rollout restart` does it: the pod template's `kubectl.kubernetes.io/restartedAt` annotation is
set to now, and the workload controller replaces the pods at its own pace (maxUnavailable, PDBs); each
new pod goes through the webhook and gets the current config.

- Only Deployments (derived from a ReplicaSet owner), StatefulSets and DaemonSets are restarted; stale
  pods without such an owner (bare pods, Jobs) are reported as not restartable.
- A workload restarted once for a ConfigMap is not restarted again for it: the template also carries
  `telemetry.otlp-operator.io/restarted-for-config: <ConfigMap>`, read back before each restart, so
  retries and operator restarts do not restart a rollout that is already under way.
- Restarts are rate-limited operator-wide (`Limiter`: a burst, then one per interval), so a change to a
  pipeline used by hundreds of workloads does not restart the whole cluster at once; what is left is
  reported as pending and picked up by the caller's retry.

`roll` returns a `Report`; its `as_status()` is what the pipeline's `status.rollouts` shows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from otlp_operator import naming
from otlp_operator.injection import markers, workload
from otlp_operator.reconcile import kube

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTARTED_FOR = f"{naming.PREFIX}restarted-for-config"
ROLLABLE = ("Deployment", "StatefulSet", "DaemonSet")
#: At most this many names are listed per field of the status; the counts are always complete.
STATUS_LIST_LIMIT = 20


@dataclasses.dataclass(frozen=True, order=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclasses.dataclass
class Report:
    """What one rollout pass found and did for one published ConfigMap."""

    config_map: str
    restarted: list[WorkloadRef] = dataclasses.field(default_factory=list)
    already: list[WorkloadRef] = dataclasses.field(default_factory=list)
    pending: list[WorkloadRef] = dataclasses.field(default_factory=list)
    unrollable: list[str] = dataclasses.field(default_factory=list)

    def as_status(self, now: str) -> dict[str, Any]:
        def names(items: Iterable[object]) -> list[str]:
            return [str(item) for item in items][:STATUS_LIST_LIMIT]

        return {
            "configMap": self.config_map,
            "lastPass": now,
            "restarted": names(self.restarted),
            "restartedCount": len(self.restarted),
            "inProgress": len(self.already),
            "pending": names(self.pending),
            "pendingCount": len(self.pending),
            "notRestartable": names(self.unrollable),
        }


class Limiter:
    """A token bucket: `burst` restarts at once, then one per `interval` seconds."""

    def __init__(
        self, burst: int = 5, interval: float = 12.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.interval, self._clock = burst, interval, clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        """Use one restart if one is available now."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self) -> float:
        """Seconds until the next restart is available."""
        self._refill()
        return max(0.0, (1 - self._tokens) * self.interval)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) / self.interval)
        self._last = now


def stale(
    pods: Iterable[dict[str, Any]], namespace: str, name: str, config_map: str
) -> tuple[list[WorkloadRef], list[str]]:
    """The workloads owning pods injected from pipeline namespace/name with another ConfigMap (sorted, once
    each), and the stale pods no restartable workload owns."""
    found: set[WorkloadRef] = set()
    unrollable: list[str] = []
    for pod in pods:
        marker = markers.read(pod)
        if marker is None or (marker.namespace, marker.name) != (namespace, name):
            continue
        if marker.config_map == config_map or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        owner = workload.top(pod)
        pod_namespace = str((pod.get("metadata") or {}).get("namespace", ""))
        if owner is None or owner.kind not in ROLLABLE:
            unrollable.append(f"Pod {pod_namespace}/{(pod.get('metadata') or {}).get('name', '?')}")
            continue
        found.add(WorkloadRef(owner.kind, pod_namespace, owner.name))
    return sorted(found), sorted(unrollable)


def restart_patch(config_map: str, now: str) -> dict[str, Any]:
    """The merge patch `kubectl rollout restart` sends, plus the ConfigMap it restarts for."""
    annotations = {RESTARTED_AT: now, RESTARTED_FOR: config_map}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


async def roll(
    client: kube.Kube,
    target: tuple[str, str],
    namespaces: Iterable[str],
    config_map: str,
    limiter: Limiter,
    now: str,
) -> Report:
    """Restart the workloads of pods injected from `target` (namespace, name) for another ConfigMap."""
    namespace, name = target
    pods: list[dict[str, Any]] = []
    for ns in sorted(set(namespaces)):
        pods += await client.list("Pod", ns, markers.selector(name))
    workloads, unrollable = stale(pods, namespace, name, config_map)
    report = Report(config_map, unrollable=unrollable)
    for ref in workloads:
        live = await client.get(ref.kind, ref.namespace, ref.name)
        if live is None:
            continue
        template = ((live.get("spec") or {}).get("template") or {}).get("metadata") or {}
        if (template.get("annotations") or {}).get(RESTARTED_FOR) == config_map:
            report.already.append(ref)
        elif limiter.take():
            await client.patch(ref.kind, ref.namespace, ref.name, restart_patch(config_map, now))
            report.restarted.append(ref)
        else:
            report.pending.append(ref)
    return report
