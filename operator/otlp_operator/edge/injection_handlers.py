"""The kopf edge of sidecar injection: the mutating webhook on Pod CREATE and stale-sidecar rollouts.

- `catalog.Catalog` keeps what the webhook needs in memory: every pipeline of the watched namespaces,
  parsed and validated once per change with the config hash reconcile published, and the `inject`
  annotation of every namespace that has one (removed at once when the annotation is). Two informers fill
  it by list and watch on every replica (`injection_state`; kopf's indexes would pause on replicas that do
  not reconcile). The webhook makes no API
  call: it answers from memory within milliseconds, far inside the API server's timeout. Until both
  informers have listed, the replica is not ready (`waiting_for`, `/readyz`), and a review that still
  arrives (a URL-configured webhook has no Service to hold it back) waits for them at the server's gate
  (`webhook_server.GATE_WAIT`), then gets a 503 (the webhook's failurePolicy applies): it is never
  answered from empty caches.
- `inject` (webhook id, so the chart's `/inject` path reaches it): `resolve.decide`, then
  `transform.inject`; the pod is replaced through kopf's patch (sent as a JSONPatch).
- Every pod that asked for an agent is counted (`otlp_operator_injections_total`): `injected`, or
  `skipped` with the reason its Event gives (`NotReady` before the caches are filled, `InternalError` for
  a bug of ours).
- Fail-open: whatever goes wrong (no such pipeline, an ambiguous "true", a pod the pipeline does not
  allow, a refused pod, or a bug of ours) admits the pod unchanged. The reason goes back to the client as
  an admission warning (`kubectl` prints it), to the operator's log, and into a Warning Event (reason:
  why, e.g. `UnknownPipeline`, `AmbiguousPipeline`, `NotAllowed`, `PortConflict`) about the pod's owner
  (or the pod) in its namespace, plus one about the pipeline when it exists. Events are posted in
  the background, at most once a minute per object and reason on each replica, with bounded tasks and
  memory (`_post`); none on a dry run (the webhook declares `sideEffects: NoneOnDryRun`).
- `rollout-stale-sidecars`: on create, update and resume of a sidecar pipeline with
  `injection.rolloutOnChange`, `sidecar_restarts.roll` restarts the workloads of pods that mount another
  ConfigMap than the published one (`status.configRollout.configMap`, once its `generation` is the
  spec's: until reconcile has published the spec, the handler retries, so no workload is stamped with a
  ConfigMap that does not exist yet); the result is
  written to `status.rollouts` (and a Normal Event `RolloutRestarted`); workloads left by the rate limit
  make the handler retry when the limiter allows the next restart.

The cluster version (native sidecars from 1.29) is read once at start-up. Everything the handlers share
lives in kopf's memo (an `injection_state.Injection`), created by the startup handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

import kopf
from otlp_agent.api import loader, spec

from otlp_operator import metrics as operator_metrics
from otlp_operator import validation
from otlp_operator.edge import injection_state, webhook_server
from otlp_operator.edge.settings import OperatorConfig
from otlp_operator.injection import resolve, transform, workload
from otlp_operator.reconcile import kube, reconciler, sidecar_restarts

RESOURCE = (spec.API_GROUP, spec.API_VERSION, spec.PLURAL)
WEBHOOK_ID = "inject"
#: Where handlers.build_registry's startup handler keeps the reconcile context (pipelineRef resolution).
RECONCILE_CONTEXT = "reconcile_context"
EVENT_INTERVAL = 60.0
#: Event posts under way at once, per replica (a flood of refused pods must not pile up tasks).
MAX_EVENTS_IN_FLIGHT = 32
#: (object, reason) pairs remembered for the rate limit, per replica (each for EVENT_INTERVAL).
MAX_EVENTS_REMEMBERED = 10_000
_log = logging.getLogger(__name__)


def parse_version(info: dict[str, Any]) -> tuple[int, int]:
    """(major, minor) from `/version`; providers append "+" to the minor ("29+")."""
    digits = [re.sub(r"\D", "", str(info.get(key, ""))) for key in ("major", "minor")]
    return (int(digits[0]), int(digits[1])) if all(digits) else injection_state.UNKNOWN_VERSION


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the injection webhook, its caches and the rollout handler to `registry`."""
    _register_lifecycle(registry, config)
    if config.webhook is not None:  # kopf refuses admission handlers without a webhook server
        _register_webhook(registry)
    _register_rollout(registry)


def _register_lifecycle(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry, id="injection-start")
    async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        state = injection_state.injection_of(memo)
        if state is None:
            metrics = operator_metrics.of(memo)
            state = memo[injection_state.MEMO_KEY] = injection_state.Injection(
                config, kube.Kube.connect(), metrics=metrics
            )
            state.client.on_error = metrics.api_error
            if config.webhook is not None:
                injection_state.start_informers(state)
                if isinstance(settings.admission.server, webhook_server.WebhookServer):
                    settings.admission.server.gates[WEBHOOK_ID] = state.wait_synced
        try:
            state.version = parse_version(await state.client.server_version())
        except kube.ApiError as exc:
            raise kopf.TemporaryError(
                f"reading the server version: {exc}", delay=state.config.retry_delay
            ) from exc

    @kopf.on.cleanup(registry=registry, id="injection-stop")
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        state = memo.pop(injection_state.MEMO_KEY, None)
        if state is None:
            return
        for running in state.informers:
            running.stop()
        for task in list(state.events):
            task.cancel()
        for task in list(state.events):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        state.client.close()


def _register_webhook(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        id=WEBHOOK_ID,
        operations=["CREATE"],
        ignore_failures=True,  # failurePolicy: Ignore when kopf manages the configuration
        side_effects=True,  # Events; none on dry runs
        registry=registry,
    )
    async def inject(
        body: kopf.Body, patch: kopf.Patch, warnings: list[str], dryrun: bool, memo: kopf.Memo, **_: Any
    ) -> None:
        state = injection_state.injection_of(memo)
        if state is None or not state.synced:  # the server's gate holds reviews back: fail open if not
            warnings.append("no OTLP agent injected (NotReady): the operator's caches are not filled yet")
            _log.warning("a pod was admitted unchanged: the pod webhook's caches are not filled yet")
            operator_metrics.of(memo).injection("skipped", "NotReady")
            return
        try:
            pod = validation.plain(body)
            injected = admit(state, pod, warnings, dryrun)
        except Exception:  # a bug of ours must never block a pod
            _log.exception("sidecar injection failed; the pod is admitted unchanged")
            state.metrics.injection("skipped", "InternalError")
            return
        if injected is not None:
            patch.fns.append(lambda raw: _replace(raw, injected))


def _replace(raw: Any, injected: dict[str, Any]) -> None:
    raw.clear()
    raw.update(copy.deepcopy(injected))


def admit(
    state: injection_state.Injection, pod: dict[str, Any], warnings: list[str], dryrun: bool
) -> dict[str, Any] | None:
    """The injected pod, or None to admit `pod` unchanged (saying why when the pod asked)."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    namespace_annotations = state.catalog.namespace_annotations(namespace)
    decision = resolve.decide(pod, namespace, namespace_annotations, state.catalog.pipelines)
    target = decision.target
    if target is None or target.pipeline is None:
        if decision.warning:
            _skip(state, pod, decision.reason, decision.message, decision.about, warnings, dryrun)
        return None
    try:
        injected = transform.inject(
            pod,
            target.pipeline,
            cluster_version=state.version,
            config_map=target.config_map or "",
            image=state.config.agent_image,
        )
    except transform.Refusal as refusal:
        _skip(state, pod, refusal.reason, refusal.message, target, warnings, dryrun)
        return None
    sidecar = target.pipeline.spec.mode == spec.Mode.sidecar
    state.metrics.injection("injected", "Sidecar" if sidecar else "Environment")
    return injected


def _skip(
    state: injection_state.Injection,
    pod: dict[str, Any],
    reason: str,
    message: str,
    about: resolve.Target | None,
    warnings: list[str],
    dryrun: bool,
) -> None:
    text = f"no OTLP agent injected ({reason}): {message}"
    warnings.append(text)
    state.metrics.injection("skipped", reason)
    subject = _subject(pod)
    _log.warning("%s %s/%s: %s", subject["kind"], subject["metadata"]["namespace"], _name(subject), text)
    if dryrun:
        return
    _post(state, subject, reason, text)
    if about is not None:
        pipeline = {
            "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
            "kind": spec.KIND,
            "metadata": {"name": about.name, "namespace": about.namespace, "uid": about.uid},
        }
        who = f"{subject['kind']} {subject['metadata']['namespace']}/{_name(subject)}"
        _post(state, pipeline, reason, f"{who} asked for this pipeline and got no agent: {message}")


def _subject(pod: dict[str, Any]) -> dict[str, Any]:
    """What the Event is about: the pod's controller (it exists and has a uid), else the pod."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    owner = workload.controller(pod)
    if owner is not None and owner.uid:
        meta = {"name": owner.name, "namespace": namespace, "uid": owner.uid}
        return {"apiVersion": owner.api_version or "v1", "kind": owner.kind, "metadata": meta}
    name = metadata.get("name") or metadata.get("generateName") or "pod"
    meta = {"name": name, "namespace": namespace, "uid": str(metadata.get("uid") or "")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _post(state: injection_state.Injection, regarding: dict[str, Any], reason: str, message: str) -> None:
    """Post a Warning Event in the background, at most once per EVENT_INTERVAL per object and reason (on
    this replica). At most MAX_EVENTS_IN_FLIGHT posts are under way and MAX_EVENTS_REMEMBERED objects are
    remembered at once: beyond either, the Event is dropped and counted (the admission warning and the log
    still say it), so a flood of refused pods costs bounded memory and tasks."""
    meta = regarding["metadata"]
    key = (regarding["kind"], meta["namespace"], meta["name"], reason)
    now = state.clock()
    _forget_older(state.posted, now - EVENT_INTERVAL)
    if key in state.posted:
        return
    if len(state.events) >= MAX_EVENTS_IN_FLIGHT or len(state.posted) >= MAX_EVENTS_REMEMBERED:
        state.metrics.event_dropped(reason)
        if now - state.drop_logged >= EVENT_INTERVAL:  # the metric counts every one
            state.drop_logged = now
            _log.warning("too many Events to post; dropping them (otlp_operator_events_dropped_total)")
        return
    state.posted[key] = now
    task = asyncio.create_task(_post_now(state, regarding, reason, message), name=f"event {reason}")
    state.events.add(task)
    task.add_done_callback(state.events.discard)


def _forget_older(posted: dict[tuple[str, ...], float], since: float) -> None:
    """Drop the entries posted before `since` (the dict is in posting order: the oldest come first)."""
    while posted:
        key, when = next(iter(posted.items()))
        if when > since:
            return
        del posted[key]


async def _post_now(
    state: injection_state.Injection, regarding: dict[str, Any], reason: str, message: str
) -> None:
    try:
        await state.client.post_event(regarding, True, reason, message, reconciler.utc_now())
    except kube.ApiError as exc:  # the admission warning and the log already say it
        _log.warning("could not post event %s: %s", reason, exc)


def _rolls_on_change(spec: kopf.Spec, **_: Any) -> bool:
    injection = spec.get("injection") or {}
    return spec.get("mode") == "sidecar" and bool(injection.get("rolloutOnChange"))


async def _published_pipeline(
    state: injection_state.Injection, memo: kopf.Memo, body: kopf.Body
) -> loader.OTLPPipeline | None:
    """The pipeline as reconcile publishes it (pipelineRefs resolved); None while the spec is invalid or a
    reference does not resolve, since reconcile publishes nothing then. A failed read is retried."""
    try:
        resolution = await reconciler.resolved(memo[RECONCILE_CONTEXT], body)
    except kube.ApiError as exc:
        raise kopf.TemporaryError(f"resolving pipelineRefs: {exc}", delay=state.config.retry_delay) from exc
    if resolution is None or resolution.failures:
        return None
    return resolution.pipeline


def _register_rollout(registry: kopf.OperatorRegistry) -> None:
    common: dict[str, Any] = {"registry": registry, "id": "rollout-stale-sidecars", "when": _rolls_on_change}

    @kopf.on.resume(*RESOURCE, **common)
    @kopf.on.create(*RESOURCE, **common)
    @kopf.on.update(*RESOURCE, **common)
    async def roll(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        state = injection_state.injection_of(memo)
        if state is None:
            return
        pipeline = await _published_pipeline(state, memo, body)
        if pipeline is None:
            return  # nothing new is published: nothing is stale
        config_map = _published_for(body)
        if config_map is None:  # reconcile has not published this spec yet (or keeps failing to)
            raise kopf.TemporaryError(
                f"waiting for generation {body.metadata.get('generation')} to be published",
                delay=state.config.retry_delay,
            )
        injection = pipeline.spec.injection or spec.Injection()
        namespaces = {pipeline.namespace, *injection.allowed.namespaces}
        try:
            report = await sidecar_restarts.roll(
                state.client,
                (pipeline.namespace, pipeline.name),
                namespaces,
                config_map,
                state.limiter,
                reconciler.utc_now(),
            )
            await _report(state.client, validation.plain(body), report)
        except kube.ApiError as exc:
            raise kopf.TemporaryError(
                f"rolling stale sidecars: {exc}", delay=state.config.retry_delay
            ) from exc
        if report.pending:
            raise kopf.TemporaryError(
                f"{len(report.pending)} workloads wait for the restart rate limit", delay=state.limiter.wait()
            )


def _published_for(body: Mapping[str, Any]) -> str | None:
    """The published ConfigMap when it was built from this very spec (status.configRollout.generation is
    the body's generation), else None: workloads are restarted only for a config that exists."""
    published = (body.get("status") or {}).get("configRollout") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if not published.get("configMap") or published.get("generation") != generation:
        return None
    return str(published["configMap"])


async def _report(client: kube.Kube, obj: dict[str, Any], report: sidecar_restarts.Report) -> None:
    if not (report.restarted or report.pending or report.unrollable or report.already):
        return
    now = reconciler.utc_now()
    meta = obj["metadata"]
    await client.patch(
        kube.PIPELINE,
        meta["namespace"],
        meta["name"],
        {"status": {"rollouts": report.as_status(now)}},
        subresource="status",
    )
    if report.restarted:
        names = ", ".join(str(ref) for ref in report.restarted)
        message = f"restarted for ConfigMap {report.config_map}: {names}"
        with contextlib.suppress(kube.ApiError):
            await client.post_event(obj, False, "RolloutRestarted", message, now)
