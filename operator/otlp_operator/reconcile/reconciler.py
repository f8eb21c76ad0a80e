"""One reconcile of one OTLPPipeline: the same idempotent path for create, update, resume, drift checks
and child events.

    validate (agent models) ─► resolve pipelineRefs ─► build_all (pure) ─► apply children ─► prune stale
    ones ─► (sidecar pipelines) write the config copies in the other namespaces they allow
    (`config_copies`) ─► ask the agents which config they run (`config_rollout`) ─► status + Events

A pipeline whose agents do not all run the published config yet is looked at again soon
(`Context.followups`, which the edge polls), so `ConfigApplied` follows them without waiting for the drift
check.

Events (core/v1, `source.component: otlp-operator`) are posted for every condition transition
(reason = the condition's reason) and for every reconcile that changed children (reason `Applied`,
listing what was created, updated, adopted, replaced or deleted). Failing to post one is logged, never
fatal.

An invalid spec stops after validation: no child is written, so the agents keep running the last good
config, and the status says why (ConfigValid=False, Degraded=True). So does a pipelineRef that does not
resolve (ReferencesResolved=False with the reason, Degraded=True): each target is read at every reconcile
(`pipelinerefs` resolves it), and `Context.referrers` remembers what each reference resolved to, so a
change of a target reconciles its referrers (see `referrers_of`). An API error while applying is
reported in the status (Degraded=True, ApplyFailed) and returned in the `Outcome` for the caller to retry
(kopf handlers turn a transient one into `kopf.TemporaryError`). Reconciles of the same pipeline never
overlap (one lock per pipeline), since child events, the drift timer and spec changes can coincide.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from otlp_agent.api import memory_fit, spec
from otlp_agent.api.problems import SpecError

from otlp_operator import manifests, naming, validation
from otlp_operator import metrics as operator_metrics
from otlp_operator.injection import configcopy
from otlp_operator.reconcile import (
    apply,
    child_events,
    config_copies,
    config_rollout,
    config_status,
    injected_pods,
    kube,
    pipeline_refs,
    status,
)

_log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Context:
    """What reconciles share for the life of the operator."""

    client: kube.Kube
    agent_image: str
    index: child_events.ChildIndex = dataclasses.field(default_factory=child_events.ChildIndex)
    referrers: pipeline_refs.ReferrerIndex = dataclasses.field(default_factory=pipeline_refs.ReferrerIndex)
    clock: Callable[[], str] = utc_now
    #: Count the pods injected from sidecar pipelines (`injected_pods`; needs RBAC to list pods).
    count_injected: bool = False
    metrics: operator_metrics.OperatorMetrics = dataclasses.field(
        default_factory=operator_metrics.OperatorMetrics
    )
    rollout_settings: config_rollout.Settings = dataclasses.field(default_factory=config_rollout.Settings)
    rollouts: config_rollout.Memory = dataclasses.field(default_factory=config_rollout.Memory)
    #: Pipelines to reconcile again, and when (event-loop time): their agents are picking up a config.
    followups: dict[naming.PipelineKey, float] = dataclasses.field(default_factory=dict)
    _locks: dict[naming.PipelineKey, asyncio.Lock] = dataclasses.field(default_factory=dict)

    def lock(self, key: naming.PipelineKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a reconcile did; `error` is set when it must be retried."""

    report: dict[str, Any]
    transitions: list[status.Transition]
    changes: list[str]
    error: kube.ApiError | None = None


async def reconcile(ctx: Context, body: Mapping[str, Any]) -> Outcome:
    """Bring the children of the pipeline `body` in line with its spec and report it in its status."""
    obj = validation.plain(body)
    key = naming.PipelineKey.of(obj)
    async with ctx.lock(key):
        started = time.monotonic()
        try:
            outcome = await _reconcile(ctx, obj, key)
        except kube.ApiError:
            ctx.metrics.reconciled(key, time.monotonic() - started, None)
            raise
        ctx.metrics.reconciled(key, time.monotonic() - started, outcome.report)
        return outcome


async def reconcile_by_name(ctx: Context, key: naming.PipelineKey) -> Outcome | None:
    """Reconcile the pipeline named `key` as it is now (None when it no longer exists)."""
    body = await ctx.client.get(kube.PIPELINE, key.namespace, key.name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        ctx.index.forget(key)
        ctx.referrers.forget(key)
        ctx.metrics.forget(key)
        ctx.followups.pop(key, None)
        ctx.rollouts.confirmed.pop(key, None)
        return None
    return await reconcile(ctx, body)


async def drift_check(ctx: Context) -> list[tuple[naming.PipelineKey, Exception]]:
    """Reconcile every known pipeline once (restores what no event reported); returns the failures."""
    failures: list[tuple[naming.PipelineKey, Exception]] = []
    for key in ctx.index.pipelines():
        try:
            outcome = await reconcile_by_name(ctx, key)
        except kube.ApiError as exc:
            failures.append((key, exc))
            continue
        if outcome is not None and outcome.error is not None:
            failures.append((key, outcome.error))
    return failures


async def referrers_of(ctx: Context, event_type: str, body: Mapping[str, Any]) -> list[Outcome | None]:
    """Reconcile the pipelines whose pipelineRefs to the pipeline `body` now resolve differently."""
    obj = validation.plain(body)
    target = naming.PipelineKey.of(obj)
    found = None if event_type == "DELETED" else obj
    outcomes = []
    for referrer in ctx.referrers.referrers_to_reconcile(target, found):
        outcomes.append(await reconcile_by_name(ctx, referrer))
    return outcomes


async def _reconcile(ctx: Context, obj: dict[str, Any], key: naming.PipelineKey) -> Outcome:
    generation = int(obj["metadata"].get("generation") or 0)
    selector = f"{naming.PIPELINE_LABEL}={naming.label_value(key.name)}"
    error: kube.ApiError | None = None
    changes: list[str] = []
    ctx.index.know(key)
    try:
        pipeline = validation.parse(obj)
    except SpecError as exc:
        ctx.referrers.forget(key)
        problems = tuple(str(p) for p in exc.problems)
        sidecar = (obj.get("spec") or {}).get("mode") == spec.Mode.sidecar.value
        obs = await _held(ctx, obj, selector, status.Observation(generation, problems, sidecar=sidecar))
    else:
        resolution = await _resolve(ctx, pipeline)
        if resolution.failures:
            failures = tuple(status.ReferenceFailure(f.reason, str(f)) for f in resolution.failures)
            # A sidecar pipeline has no workload: its status speaks of the published config (if any).
            sidecar = pipeline.spec.mode == spec.Mode.sidecar
            held = status.Observation(
                generation, sidecar=sidecar, reference_failures=failures, memory=memory_fit.check(pipeline)
            )
            obs = await _held(ctx, obj, selector, held)
        else:
            obs, changes, error = await _apply(ctx, obj, resolution, key, selector)
    _follow(ctx, key, obs.rollout)
    new_status, transitions = status.compute(obs, obj.get("status") or {}, ctx.clock())
    await _write_status(ctx.client, obj, new_status)
    if changes:
        await _post(ctx, obj, False, "Applied", "; ".join(changes))
    for transition in transitions:
        await _post(ctx, obj, transition.warning, transition.condition.reason, transition.message)
    return Outcome(new_status, transitions, changes, error)


def _follow(ctx: Context, key: naming.PipelineKey, rollout: config_status.Rollout | None) -> None:
    delay = config_rollout.followup(rollout)
    if delay is None:
        ctx.followups.pop(key, None)
    else:
        ctx.followups[key] = asyncio.get_running_loop().time() + delay


async def resolved(ctx: Context, body: Mapping[str, Any]) -> pipeline_refs.Resolution | None:
    """The pipeline `body` as reconcile publishes it (every pipelineRef resolved), with the outcomes; None
    when the spec is invalid. Sidecar rollouts use it, so they agree with the config hash and the ConfigMap
    reconcile writes."""
    try:
        pipeline = validation.parse(validation.plain(body))
    except SpecError:
        return None
    return await _resolve(ctx, pipeline)


async def _resolve(ctx: Context, pipeline: Any) -> pipeline_refs.Resolution:
    """Read every target of the pipeline's references and resolve them (remembered for target events)."""
    ctx.referrers.expect(pipeline)
    bodies: dict[naming.PipelineKey, dict[str, Any] | None] = {}
    unreadable: dict[naming.PipelineKey, str] = {}
    for key in pipeline_refs.targets(pipeline):
        try:
            bodies[key] = await ctx.client.get(kube.PIPELINE, *key)
        except kube.ApiError as exc:
            if exc.transient:  # retried like any apply error
                raise
            unreadable[key] = str(exc)  # e.g. 403: a namespace outside the operator's RBAC
    resolution = pipeline_refs.resolve(pipeline, bodies, unreadable)
    ctx.referrers.remember(pipeline, resolution)
    return resolution


async def _held(
    ctx: Context, obj: dict[str, Any], selector: str, obs: status.Observation
) -> status.Observation:
    """`obs` for a pipeline whose children are left alone: the running agents keep their config."""
    workload = await apply.find_workload(
        ctx.client, obj["metadata"]["namespace"], selector, obj["metadata"]["uid"]
    )
    if workload is not None:
        ctx.index.observed(workload)
    previous_hash = (obj.get("status") or {}).get("configHash")
    return dataclasses.replace(obs, workload=workload, config_hash=previous_hash)


async def _post(ctx: Context, obj: dict[str, Any], warning: bool, reason: str, message: str) -> None:
    try:
        await ctx.client.post_event(obj, warning, reason, message, ctx.clock())
    except kube.ApiError as exc:  # an Event is a courtesy; the status already says it
        _log.warning("could not post event %s about %s: %s", reason, obj["metadata"]["name"], exc)


async def _apply(
    ctx: Context,
    obj: dict[str, Any],
    resolution: pipeline_refs.Resolution,
    key: naming.PipelineKey,
    selector: str,
) -> tuple[status.Observation, list[str], kube.ApiError | None]:
    uid = obj["metadata"]["uid"]
    pipeline = resolution.pipeline
    owner = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": obj["metadata"]}
    desired = manifests.build_all(pipeline, agent_image=ctx.agent_image, owner=owner)
    sidecar = pipeline.spec.mode == spec.Mode.sidecar
    obs = status.Observation(
        int(obj["metadata"].get("generation") or 0),
        sidecar=sidecar,
        config_hash=manifests.agentconfig.render(pipeline).hash,
        endpoints=naming.endpoints(pipeline),
        selector=",".join(f"{k}={v}" for k, v in naming.selector_labels(pipeline).items()),
        references=[r.status() for r in resolution.references],
        agent_version=naming.version_label(pipeline.spec.image or ctx.agent_image),
        memory=memory_fit.check(pipeline),
    )
    applied = apply.Applied()
    ctx.index.remember(key, desired)
    try:
        await apply.apply_all(ctx.client, desired, uid, applied)
        workload = _workload(applied.live)
        done = workload is not None and status.rollout(workload).done
        applied.changes += await apply.prune(
            ctx.client, key.namespace, selector, uid, desired, keep_old_configs=sidecar or not done
        )
        copied = await _copy_config(ctx, pipeline, key, applied.changes) if sidecar else None
    except apply.Conflict as exc:
        failed = dataclasses.replace(
            obs, workload=_workload(applied.live), apply_error=("ChildConflict", str(exc))
        )
        return failed, applied.changes, None
    except kube.ApiError as exc:
        why = f"{exc}; retrying" if exc.transient else str(exc)
        failed = dataclasses.replace(obs, workload=_workload(applied.live), apply_error=("ApplyFailed", why))
        return failed, applied.changes, exc
    if workload is not None:
        ctx.index.observed(workload)
    config_map = str(desired[0]["metadata"]["name"])
    injected = await _injected(ctx, pipeline, key, config_map) if sidecar else None
    obs = dataclasses.replace(obs, workload=workload, injected=injected, copied_to=copied)
    try:
        rollout = await config_rollout.observe(
            ctx.client, ctx.rollout_settings, ctx.rollouts, pipeline, (obs.config_hash or "", config_map),
            obj.get("status") or {}, ctx.clock(), sidecar,
        )  # fmt: skip
    except kube.ApiError as exc:  # e.g. pods may not be listed: ConfigApplied keeps its previous value
        _log.warning("cannot tell which config the agents of %s run: %s", key, exc)
        return obs, applied.changes, exc if exc.transient else None
    return dataclasses.replace(obs, rollout=rollout), applied.changes, None


async def _copy_config(
    ctx: Context, pipeline: Any, key: naming.PipelineKey, changes: list[str]
) -> tuple[str, ...]:
    """Write the sidecar pipeline's config copies into the other namespaces it allows; returns the
    namespaces that hold one. A namespace that refuses (missing, RBAC) is logged and tried again at the
    next reconcile."""
    copies = configcopy.build(pipeline, ctx.agent_image)
    written = await config_copies.write(ctx.client, copies)
    changes += written.changes
    for namespace, why in sorted(written.failed.items()):
        _log.warning("cannot copy the config of %s into namespace %s (retried at the next reconcile): %s",
                     key, namespace, why)  # fmt: skip
    return tuple(
        c["metadata"]["namespace"] for c in copies if c["metadata"]["namespace"] not in written.failed
    )


async def _injected(
    ctx: Context, pipeline: Any, key: naming.PipelineKey, config_map: str
) -> dict[str, Any] | None:
    """The sidecar pipeline's injected pods by the ConfigMap they mount (None: not counted, the status keeps
    its own)."""
    if not ctx.count_injected:
        return None
    allowed = (pipeline.spec.injection or spec.Injection()).allowed.namespaces
    try:
        return await injected_pods.census(ctx.client, key, {key.namespace, *allowed}, config_map)
    except kube.ApiError as exc:  # the next reconcile counts again
        _log.warning("counting the pods injected from %s failed: %s", key, exc)
        return None


def _workload(live: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in live if o.get("kind") in child_events.WORKLOAD_KINDS), None)


async def _write_status(client: kube.Kube, obj: dict[str, Any], new: dict[str, Any]) -> None:
    """Replace the status when it changed (a merge patch, with removed fields set to null)."""
    previous = {k: v for k, v in (obj.get("status") or {}).items() if k not in status.WRITTEN_ELSEWHERE}
    if previous == new:
        return
    body = {**{k: None for k in previous if k not in new}, **new}
    meta = obj["metadata"]
    try:
        await client.patch(
            kube.PIPELINE, meta["namespace"], meta["name"], {"status": body}, subresource="status"
        )
    except kube.ApiError as exc:
        if exc.status != 404:  # deleted meanwhile: nothing left to report on
            raise
