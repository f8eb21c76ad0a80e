"""Getting a published config to the running agents fast, and finding out which ones run it.

After reconcile has written the agent config into the ConfigMap the agent pods mount
(`manifests.configmap`), the kubelet refreshes each pod's copy of the file, and each agent polls its file
(every second) and reloads it. How long the kubelet takes is the real delay: it refreshes a ConfigMap
volume when it syncs the pod, which happens every `syncFrequency` (1 minute by default, with up to 50%
jitter) plus the time its ConfigMap cache takes to see the change (near zero with the default watch
strategy). So without help a change reaches every agent within about 1.5 × the sync period.

The faster path (`refresh_pods`, on by default): the operator sets the annotation
`telemetry.otlp-operator.io/config-hash: <hash>` on each agent pod that mounts the ConfigMap. Any change
of a pod object makes its kubelet sync that pod at once, and a pod sync remounts its ConfigMap volumes
(the kubelet reprocesses every pod it syncs, and ConfigMap volumes ask to be set up again), so the agents
see the new file within seconds. It needs `patch` on pods; when that is refused the operator logs it once
and the kubelet's own sync period applies. The annotation also says, on each pod, which config it was
asked to run.

Then the agents are asked (`agent_reports`) and the result summarized (`config_status`). A pipeline whose
agents all run the published config, with the same pods as when that was last confirmed, is not asked
again (the drift check then costs one list of pods); otherwise `followup` says when to look again.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import container
from otlp_operator.reconcile import agent_reports, config_status, kube

#: Seconds between looks while agents are expected to pick the config up, and after that.
LOOK_SOON, LOOK_LATER = 2.0, 15.0
#: What a refreshed pod (or an agent's own poll) may add to the kubelet's delay.
_MARGIN = 10.0
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settings:
    """Operator-wide: whether pods are refreshed, and the kubelet sync period assumed otherwise."""

    refresh_pods: bool = True
    kubelet_sync_period: float = 60.0

    @property
    def bound(self) -> float:
        """Seconds after publishing by which every running agent should run the config."""
        return _MARGIN if self.refresh_pods else 1.5 * self.kubelet_sync_period + _MARGIN


@dataclasses.dataclass
class Memory:
    """What the operator remembers between reconciles: confirmed rollouts, refusals already logged."""

    confirmed: dict[naming.PipelineKey, tuple[str, frozenset[str]]] = dataclasses.field(default_factory=dict)
    refused_patch: set[str] = dataclasses.field(default_factory=set)  # namespaces where patch pods is denied


async def observe(
    client: kube.Kube,
    settings: Settings,
    memory: Memory,
    pipeline: loader.OTLPPipeline,
    published: tuple[str, str],
    previous: dict[str, Any],
    now: str,
    sidecar: bool,
) -> config_status.Rollout:
    """The rollout of the published (config hash, ConfigMap) to `pipeline`'s agents, refreshing their pods
    on the way; `previous` is the pipeline's status as read."""
    config_hash, config_map = published
    before = previous.get("configRollout") or {}
    same = before.get("hash") == config_hash and before.get("configMap") == config_map
    published_at = str(before.get("publishedAt")) if same and before.get("publishedAt") else now
    expected = _plus(published_at, settings.bound)
    rollout = config_status.Rollout(config_hash, config_map, published_at, expected, sidecar=sidecar)
    if sidecar:
        return rollout
    key = naming.PipelineKey(pipeline.namespace, pipeline.name)
    selector = ",".join(f"{k}={v}" for k, v in naming.selector_labels(pipeline).items())
    pods = [p for p in await client.list("Pod", pipeline.namespace, selector) if _mounts(p, config_map)]
    if settings.refresh_pods:
        await _refresh(client, memory, pods, config_hash)
    uids = frozenset(str(p["metadata"].get("uid")) for p in pods)
    if memory.confirmed.get(key) == (config_hash, uids):
        return dataclasses.replace(rollout, applied=len(pods))
    port = pipeline.spec.telemetry.port
    addressed = [(p["metadata"]["name"], (p.get("status") or {}).get("podIP")) for p in pods]
    reports = await agent_reports.ask(
        [(pod, agent_reports.url(str(ip), port)) for pod, ip in addressed if ip]
    )
    reports += [agent_reports.Report(pod, error="no pod IP yet") for pod, ip in addressed if not ip]
    found = _summarize(rollout, reports, late=now > expected)
    if found.settled and pods:
        memory.confirmed[key] = (config_hash, uids)
    else:
        memory.confirmed.pop(key, None)
    return found


def followup(rollout: config_status.Rollout | None) -> float | None:
    """Seconds until the rollout should be looked at again (None: the drift check is enough).

    After `expectedBy`, a rollout where every agent that answered runs the config and the rest cannot be
    asked (`Unconfirmed`: a NetworkPolicy, pods that never answer) is left to the drift check: asking an
    agent that does not answer takes the whole timeout under the pipeline's lock (`agent_reports`), so
    asking them every `LOOK_LATER` seconds forever would hold that lock most of the time for a large
    DaemonSet."""
    if rollout is None or rollout.settled:
        return None
    if rollout.late and not rollout.pending and not rollout.rejections:
        return None
    return LOOK_LATER if rollout.late or rollout.rejections else LOOK_SOON


def _summarize(
    rollout: config_status.Rollout, reports: list[agent_reports.Report], late: bool
) -> config_status.Rollout:
    applied = pending = unreachable = 0
    rejections = []
    for report in reports:
        if report.error is not None or report.running is None:
            unreachable += 1
        elif report.running.startswith(rollout.hash):
            applied += 1
        elif not report.last_applied and (report.last_sha256 or "").startswith(rollout.hash):
            rejections.append(f"{report.pod}: {report.reason or 'rejected'}")
        else:
            pending += 1
    return dataclasses.replace(
        rollout,
        applied=applied,
        pending=pending,
        unreachable=unreachable,
        late=late,
        rejections=tuple(sorted(rejections)),
    )


async def _refresh(client: kube.Kube, memory: Memory, pods: list[dict[str, Any]], config_hash: str) -> None:
    """Annotate each pod with the config it should run: its kubelet then syncs it, refreshing the file."""
    for pod in pods:
        meta = pod["metadata"]
        if (meta.get("annotations") or {}).get(naming.CONFIG_HASH_ANNOTATION) == config_hash:
            continue
        if meta["namespace"] in memory.refused_patch:
            return
        patch = {"metadata": {"annotations": {naming.CONFIG_HASH_ANNOTATION: config_hash}}}
        try:
            await client.patch("Pod", meta["namespace"], meta["name"], patch)
        except kube.ApiError as exc:
            if exc.status == 403:
                memory.refused_patch.add(meta["namespace"])
                _log.warning(
                    "may not patch pods in %s (%s): agents there pick up config changes at the kubelet's "
                    "sync period instead of within seconds",
                    meta["namespace"],
                    exc,
                )
                return
            if exc.status != 404 and not exc.transient:
                raise


def _mounts(pod: dict[str, Any], config_map: str) -> bool:
    """A live agent pod that mounts `config_map` (pods of another template are being replaced)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return any(
        v.get("name") == container.CONFIG_VOLUME and (v.get("configMap") or {}).get("name") == config_map
        for v in volumes
    )


def _plus(when: str, seconds: float) -> str:
    moment = datetime.datetime.strptime(when, _TIME).replace(tzinfo=datetime.UTC)
    return (moment + datetime.timedelta(seconds=seconds)).strftime(_TIME)
