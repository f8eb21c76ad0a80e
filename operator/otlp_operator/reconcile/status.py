"""The OTLPPipeline status, computed from what the operator observed (pure: no API, no clock, no kopf).

Conditions (each with `status`, `reason`, `message`, `lastTransitionTime`, `observedGeneration`):

- ConfigValid: the spec passes the agent's own validation. `Valid` / `InvalidSpec`.
- Ready: every agent pod of the workload is ready and up to date; in sidecar mode (no workload), a config
  is published for injection. `AgentsReady`, `ConfigPublished` / `AgentsNotReady`, `NoAgentsScheduled`,
  `WorkloadMissing`, `NotPublished` (a sidecar pipeline that never had a valid, resolved config).
- Progressing: a rollout is under way. `RollingOut` / `RolloutComplete`, `ConfigPublished`,
  `NotPublished`, `ProgressDeadlineExceeded`.
- Degraded: the operator cannot make the cluster match the spec. `InvalidSpec`, `ApplyFailed`,
  `ChildConflict`, `ProgressDeadlineExceeded`, `ReferenceUnresolved`, `ConfigRejected` (an agent could
  not apply the published config) / `AsExpected`.
- ConfigApplied: the agents run the published config (they say so; see `config_status`). `Applied`,
  `NoAgents`, `NotTracked` / `Rejected`, `Pending`, `Late`, `Unconfirmed`. While nothing is applied (an
  invalid spec, an unresolved reference) it keeps its previous value.
- ReferencesResolved: every exporter's `pipelineRef` resolved to its target's Service (see
  `pipelinerefs`). `Resolved`, `NoReferences` / the first failure's reason (`TargetNotFound`,
  `NotAllowed`, `TargetInvalid`, `TargetHasNoService`, `ProtocolNotServed`, `SelfReference`,
  `TargetUnreadable`, `ReferenceCycle`), with every failure in the message. While False nothing is
  applied: the agents keep their last good config (when there is one: the Degraded message says which
  hash, or that nothing was ever deployed). While the spec is invalid it keeps its previous value
  (`InvalidSpec` if none).
- MemoryFits: the agent container's memory limit leaves at least 256Mi above `memoryLimiter.limit`
  (`memory_fit`; the webhook warns about the same). `Fits`, `NoMemoryLimit` / `MemoryLimitTooLow`. Computed
  from a valid spec, whether or not it could be applied; while the spec is invalid it keeps its previous
  value (`InvalidSpec` if none).

`lastTransitionTime` changes only when a condition's status changes. A `Transition` is reported when a
condition's status or reason changes; the caller posts each as a Kubernetes Event.

Beside the conditions (`_agent_fields`): `readyAgents`, "ready/desired" agents as `kubectl get otlpp`
shows them (for sidecars: injected pods whose agent is ready / injected pods), `agentVersion` (the version
of the agent image, as in the `app.kubernetes.io/version` label), and for sidecars `injected` (pods by
config hash, `injected_pods`). While nothing is applied they keep what the running agents have.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_agent.api import memory_fit

from otlp_operator.reconcile import config_status

CONDITION_TYPES = (
    "ConfigValid",
    "Ready",
    "Progressing",
    "Degraded",
    "ReferencesResolved",
    "ConfigApplied",
    "MemoryFits",
)
#: Status fields another part of the operator writes (`sidecar_restarts`: stale-sidecar restarts);
#: reconcile's status replacement leaves them as they are.
WRITTEN_ELSEWHERE = ("rollouts",)


@dataclasses.dataclass(frozen=True)
class ReferenceFailure:
    """An exporter's pipelineRef that did not resolve: the reason and a message naming it."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Observation:
    """Everything one reconcile learnt, as the inputs of the status."""

    generation: int
    #: Problems of an invalid spec (empty when valid).
    problems: tuple[str, ...] = ()
    #: True in sidecar mode: there is no workload, only the published config.
    sidecar: bool = False
    #: The Deployment or DaemonSet as last read (None when there is none).
    workload: dict[str, Any] | None = None
    #: Why applying the children failed, if it did ("ApplyFailed" or "ChildConflict", message).
    apply_error: tuple[str, str] | None = None
    config_hash: str | None = None
    endpoints: dict[str, str | None] | None = None
    selector: str | None = None
    #: Resolved pipelineRefs for `status.references` (None: keep the previous ones, as the agents do).
    references: list[dict[str, Any]] | None = None
    #: pipelineRefs that did not resolve (nothing was applied).
    reference_failures: tuple[ReferenceFailure, ...] = ()
    #: The version of the agent image applied (None: keep the previous one, as the agents do).
    agent_version: str | None = None
    #: Sidecar mode: the injected pods by the ConfigMap they mount (`injected_pods.summarize`; None: keep
    #: the previous).
    injected: dict[str, Any] | None = None
    #: The published config and which agents run it (None: nothing applied now; keep the previous).
    rollout: config_status.Rollout | None = None
    #: Sidecar mode: the other namespaces that hold a copy of the published ConfigMap (None: not known).
    copied_to: tuple[str, ...] | None = None
    #: The agent container's memory limit against the limiter (None: the spec is invalid; keep the previous).
    memory: memory_fit.Fit | None = None


@dataclasses.dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Transition:
    """A condition whose status or reason changed; `warning` for a change for the worse."""

    condition: Condition
    warning: bool

    @property
    def message(self) -> str:
        state = "True" if self.condition.status else "False"
        return f"{self.condition.type} is {state}: {self.condition.message}"


@dataclasses.dataclass(frozen=True)
class Rollout:
    """Where a workload's rollout stands (`kubectl rollout status` logic)."""

    done: bool
    desired: int
    ready: int
    message: str
    deadline_exceeded: bool = False


def rollout(workload: dict[str, Any]) -> Rollout:
    """The rollout state of a Deployment, StatefulSet or DaemonSet from its spec and status."""
    status = workload.get("status") or {}
    generation = (workload.get("metadata") or {}).get("generation", 0)
    if workload.get("kind") == "StatefulSet":
        return _statefulset_rollout(workload, status, generation)
    if workload.get("kind") == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
        ready, old = int(status.get("numberReady") or 0), 0
    else:
        desired = int((workload.get("spec") or {}).get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        ready = int(status.get("readyReplicas") or 0)
        old = int(status.get("replicas") or 0) - updated
    if int(status.get("observedGeneration") or 0) < generation:
        return Rollout(False, desired, ready, "waiting for the workload controller to see the new spec")
    if _deadline_exceeded(status):
        return Rollout(False, desired, ready, "the rollout exceeded its progress deadline", True)
    if updated < desired:
        return Rollout(False, desired, ready, f"{updated} of {desired} agents updated")
    if old > 0:
        return Rollout(False, desired, ready, f"{old} old agents pending termination")
    if available < desired:
        return Rollout(False, desired, ready, f"{available} of {desired} updated agents available")
    return Rollout(True, desired, ready, f"{ready}/{desired} agents ready")


def _statefulset_rollout(workload: dict[str, Any], status: dict[str, Any], generation: int) -> Rollout:
    """`kubectl rollout status` for a StatefulSet (RollingUpdate, partition 0): every replica updated
    and ready, and the update revision current."""
    desired = int((workload.get("spec") or {}).get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return Rollout(False, desired, ready, "waiting for the workload controller to see the new spec")
    if updated < desired:
        return Rollout(False, desired, ready, f"{updated} of {desired} agents updated")
    if ready < desired:
        return Rollout(False, desired, ready, f"{ready} of {desired} updated agents ready")
    if int(status.get("replicas") or 0) > desired:
        return Rollout(False, desired, ready, f"{int(status['replicas']) - desired} agents draining")
    if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
        return Rollout(False, desired, ready, "waiting for the update revision to become current")
    return Rollout(True, desired, ready, f"{ready}/{desired} agents ready")


def _deadline_exceeded(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )


def conditions(obs: Observation) -> list[Condition]:
    """The conditions for an observation, in `CONDITION_TYPES` order."""
    state = None if obs.sidecar or obs.workload is None else rollout(obs.workload)
    return [
        _config_valid(obs),
        _ready(obs, state),
        _progressing(obs, state),
        _degraded(obs, state),
        _references(obs),
        _config_applied(obs),
        _memory_fits(obs),
    ]


def _config_applied(obs: Observation) -> Condition:
    if obs.rollout is None:
        return Condition("ConfigApplied", False, "NotPublished", "no config is published")
    return Condition("ConfigApplied", *config_status.condition(obs.rollout))


def _memory_fits(obs: Observation) -> Condition:
    if obs.memory is None:
        return Condition("MemoryFits", False, "InvalidSpec", "the spec is invalid; nothing was checked")
    return Condition("MemoryFits", obs.memory.fits, obs.memory.reason, obs.memory.message)


def _references(obs: Observation) -> Condition:
    if obs.reference_failures:
        message = "; ".join(f.message for f in obs.reference_failures)
        return Condition("ReferencesResolved", False, obs.reference_failures[0].reason, message)
    if obs.problems:
        return Condition(
            "ReferencesResolved", False, "InvalidSpec", "the spec is invalid; nothing was resolved"
        )
    if not obs.references:
        return Condition("ReferencesResolved", True, "NoReferences", "no exporter uses pipelineRef")
    return Condition("ReferencesResolved", True, "Resolved", f"{len(obs.references)} pipelineRef(s) resolved")


def _config_valid(obs: Observation) -> Condition:
    if obs.problems:
        return Condition("ConfigValid", False, "InvalidSpec", "; ".join(obs.problems))
    return Condition("ConfigValid", True, "Valid", "the spec is valid")


def _ready(obs: Observation, state: Rollout | None) -> Condition:
    if obs.sidecar and not obs.config_hash:
        return Condition("Ready", False, "NotPublished", "no config is published: pods get no agent yet")
    if obs.sidecar:
        return Condition("Ready", True, "ConfigPublished", "the agent config is ready for injection")
    if state is None:
        return Condition("Ready", False, "WorkloadMissing", "the agent workload does not exist yet")
    counts = f"{state.ready}/{state.desired} agents ready"
    if state.desired == 0:
        return Condition("Ready", False, "NoAgentsScheduled", "no agent is scheduled (0 desired)")
    if state.done and state.ready >= state.desired:
        return Condition("Ready", True, "AgentsReady", counts)
    return Condition("Ready", False, "AgentsNotReady", f"{counts}; {state.message}")


def _progressing(obs: Observation, state: Rollout | None) -> Condition:
    if obs.sidecar and not obs.config_hash:
        return Condition("Progressing", False, "NotPublished", "waiting for a valid, resolved spec")
    if obs.sidecar:
        return Condition("Progressing", False, "ConfigPublished", "sidecars roll with their workloads")
    if state is None:
        return Condition("Progressing", True, "RollingOut", "creating the agent workload")
    if state.deadline_exceeded:
        return Condition("Progressing", False, "ProgressDeadlineExceeded", state.message)
    if state.done:
        return Condition("Progressing", False, "RolloutComplete", state.message)
    return Condition("Progressing", True, "RollingOut", state.message)


def _degraded(obs: Observation, state: Rollout | None) -> Condition:
    if obs.problems:
        return Condition("Degraded", True, "InvalidSpec", f"the spec is invalid; {_held_back(obs)}")
    if obs.reference_failures:
        message = f"a pipelineRef does not resolve; {_held_back(obs)}"
        return Condition("Degraded", True, "ReferenceUnresolved", message)
    if obs.apply_error is not None:
        reason, message = obs.apply_error
        return Condition("Degraded", True, reason, message)
    if state is not None and state.deadline_exceeded:
        return Condition("Degraded", True, "ProgressDeadlineExceeded", state.message)
    if obs.rollout is not None and obs.rollout.rejections:
        return Condition("Degraded", True, "ConfigRejected", config_status.condition(obs.rollout)[2])
    return Condition("Degraded", False, "AsExpected", "the agents match the spec")


def _held_back(obs: Observation) -> str:
    """What keeps running while nothing is applied: the last good config, if there ever was one."""
    if obs.config_hash is None:
        return "nothing is deployed until it is fixed"
    if obs.sidecar:
        return f"injected sidecars keep the last published config ({obs.config_hash})"
    return f"the agents keep running the last good config ({obs.config_hash})"


def compute(obs: Observation, previous: dict[str, Any], now: str) -> tuple[dict[str, Any], list[Transition]]:
    """The new status (a complete replacement of `previous`) and the transitions to report."""
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    new_conditions, transitions = [], []
    for condition in conditions(obs):
        before = old.get(condition.type) or {}
        if condition.type == "ReferencesResolved" and obs.problems and before:
            condition = _unchanged(condition.type, before)  # the running agents' references still hold
        if condition.type == "ConfigApplied" and obs.rollout is None and before:
            condition = _unchanged(condition.type, before)  # nothing was applied: the agents did not change
        if condition.type == "MemoryFits" and obs.memory is None and before:
            condition = _unchanged(condition.type, before)  # an invalid spec says nothing about memory
        status_text = "True" if condition.status else "False"
        changed = before.get("status") != status_text
        new_conditions.append(
            {
                "type": condition.type,
                "status": status_text,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),
                "observedGeneration": obs.generation,
            }
        )
        if changed or before.get("reason") != condition.reason:
            transitions.append(Transition(condition, _worse(condition, before.get("status"))))
    return _fields(obs, previous, new_conditions), transitions


def _unchanged(kind: str, before: dict[str, Any]) -> Condition:
    return Condition(
        kind, before.get("status") == "True", str(before.get("reason")), str(before.get("message"))
    )


def _worse(condition: Condition, before: str | None) -> bool:
    """Warn when things break: invalid spec, degraded, ready agents that are no longer ready, or a container
    that can be OOM-killed before its limiter refuses data."""
    if condition.type == "Degraded":
        return condition.status
    if condition.type == "MemoryFits":
        return condition.reason == memory_fit.TOO_LOW
    if condition.type == "ConfigValid":
        return not condition.status
    return condition.type == "Ready" and not condition.status and before == "True"


def _fields(obs: Observation, previous: dict[str, Any], new_conditions: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"observedGeneration": obs.generation, "conditions": new_conditions}
    state = None if obs.sidecar or obs.workload is None else rollout(obs.workload)
    if state is not None:
        found["replicas"], found["readyReplicas"] = state.desired, state.ready
    for key, value in (
        ("endpoints", obs.endpoints),
        ("configHash", obs.config_hash),
        ("selector", obs.selector),
        ("references", obs.references),
        ("configRollout", _published(obs)),
    ):
        if value is not None:
            found[key] = value
        elif key in previous:  # an invalid spec keeps what the running agents still have
            found[key] = previous[key]
    if not found.get("references"):  # no pipelineRef: no field
        found.pop("references", None)
    found.update(_agent_fields(obs, state, previous))
    return found


def _published(obs: Observation) -> dict[str, Any] | None:
    """`configRollout`, with the generation of the spec it was published from (the pod webhook builds a
    sidecar's container from the spec only when that spec's config is the published one) and, for sidecar
    pipelines, the namespaces holding a copy (the webhook injects pods of the others nothing)."""
    if obs.rollout is None:
        return None
    found = {**obs.rollout.as_status(), "generation": obs.generation}
    if obs.copied_to is not None:
        found["copiedTo"] = sorted(obs.copied_to)
    return found


def _agent_fields(obs: Observation, state: Rollout | None, previous: dict[str, Any]) -> dict[str, Any]:
    """readyAgents ("ready/desired"), agentVersion and (sidecars) injected; previous values while unknown."""
    found: dict[str, Any] = {}
    injected = obs.injected if obs.injected is not None else previous.get("injected")
    if state is not None:
        found["readyAgents"] = f"{state.ready}/{state.desired}"
    elif obs.sidecar and injected:
        found["readyAgents"] = f"{injected['ready']}/{injected['pods']}"
    if obs.sidecar and injected:
        found["injected"] = injected
    version = obs.agent_version or previous.get("agentVersion")
    if version:
        found["agentVersion"] = version
    return found
