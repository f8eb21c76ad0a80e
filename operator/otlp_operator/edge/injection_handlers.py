"""The kopf edge of sidecar injection: the mutating webhook on Pod CREATE and stale-sidecar rollouts.

- Two kopf indexes keep what the webhook needs in memory, updated by watch events: every pipeline,
  parsed, validated and hashed once per change (`resolve.Target`, by namespace), and the `inject`
  annotation of every namespace that has one. The webhook makes no API call: it answers from memory
  within milliseconds, far inside the API server's timeout.
- `inject` (webhook id, so the chart's `/inject` path reaches it): `resolve.decide`, then
  `transform.inject`; the pod is replaced through kopf's patch (sent as a JSONPatch).
- Fail-open: whatever goes wrong (no such pipeline, an ambiguous "true", a pod the pipeline does not
  allow, a refused pod, or a bug of ours) admits the pod unchanged. The reason goes back to the client as
  an admission warning (`kubectl` prints it), to the operator's log, and into a Warning Event (reason:
  why, e.g. `UnknownPipeline`, `AmbiguousPipeline`, `NotAllowed`, `PortConflict`) about the pod's owner
  (or the pod) in its namespace, plus one about the pipeline when it exists. Events are posted in
  the background, at most once a minute per object and reason; none on a dry run (the webhook
  declares `sideEffects: NoneOnDryRun`).
- `publish-sidecar-config`: a sidecar pipeline allowing other namespaces gets its ConfigMap copied
  there (`configcopy`), since a pod can only mount ConfigMaps of its own namespace.
- `rollout-stale-sidecars`: on create, update and resume of a sidecar pipeline with
  `injection.rolloutOnChange`, `sidecar_restarts.roll` restarts the workloads of stale pods and the result is
  written to `status.rollouts` (and a Normal Event `RolloutRestarted`); workloads left by the rate limit
  make the handler retry when the limiter allows the next restart.

The cluster version (native sidecars from 1.29) is read once at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

import kopf
from otlp_agent.api import spec

from otlp_operator import validation
from otlp_operator.edge.settings import OperatorConfig
from otlp_operator.injection import configcopy, markers, resolve, transform, workload
from otlp_operator.reconcile import kube, reconciler, sidecar_restarts

RESOURCE = (spec.API_GROUP, spec.API_VERSION, spec.PLURAL)
WEBHOOK_ID = "inject"
PIPELINES_INDEX = "injection_pipelines"
NAMESPACES_INDEX = "injection_namespaces"
EVENT_INTERVAL = 60.0
#: Until the server's version is known: regular containers work on every version.
UNKNOWN_VERSION = (1, 0)
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class State:
    """What the injection handlers share for the life of the operator."""

    config: OperatorConfig
    client: kube.Kube | None = None
    version: tuple[int, int] = UNKNOWN_VERSION
    limiter: sidecar_restarts.Limiter = dataclasses.field(default_factory=sidecar_restarts.Limiter)
    posted: dict[tuple[str, ...], float] = dataclasses.field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)


def parse_version(info: dict[str, Any]) -> tuple[int, int]:
    """(major, minor) from `/version`; providers append "+" to the minor ("29+")."""
    digits = [re.sub(r"\D", "", str(info.get(key, ""))) for key in ("major", "minor")]
    return (int(digits[0]), int(digits[1])) if all(digits) else UNKNOWN_VERSION


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> State:
    """Add the injection webhook, its indexes and the rollout handler to `registry`."""
    state = State(config)
    _register_lifecycle(registry, state)
    if config.webhook is not None:  # kopf refuses admission handlers without a webhook server
        _register_indexes(registry)
        _register_webhook(registry, state)
    _register_config_copies(registry, state)
    _register_rollout(registry, state)
    return state


def _register_lifecycle(registry: kopf.OperatorRegistry, state: State) -> None:
    @kopf.on.startup(registry=registry, id="injection-start")
    async def start(**_: Any) -> None:
        state.client = state.client or kube.Kube.connect()
        try:
            state.version = parse_version(await state.client.server_version())
        except kube.ApiError as exc:
            raise kopf.TemporaryError(
                f"reading the server version: {exc}", delay=state.config.retry_delay
            ) from exc

    @kopf.on.cleanup(registry=registry, id="injection-stop")
    async def stop(**_: Any) -> None:
        for task in list(state.tasks):
            task.cancel()
        for task in list(state.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state.client is not None:
            state.client.close()
            state.client = None


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    @kopf.index(*RESOURCE, id=PIPELINES_INDEX, registry=registry)
    def pipelines(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, resolve.Target]:
        return {namespace or "": resolve.target_of(validation.plain(body))}

    @kopf.index("", "v1", "namespaces", id=NAMESPACES_INDEX, registry=registry)
    def namespaces(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, str] | None:
        value = annotations.get(markers.INJECT_ANNOTATION)
        return None if value is None else {name: value}


def _register_webhook(registry: kopf.OperatorRegistry, state: State) -> None:
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
        body: kopf.Body, patch: kopf.Patch, warnings: list[str], dryrun: bool, **kwargs: Any
    ) -> None:
        try:
            pod = validation.plain(body)
            injected = admit(state, pod, kwargs[PIPELINES_INDEX], kwargs[NAMESPACES_INDEX], warnings, dryrun)
        except Exception:  # a bug of ours must never block a pod
            _log.exception("sidecar injection failed; the pod is admitted unchanged")
            return
        if injected is not None:
            patch.fns.append(lambda raw: _replace(raw, injected))


def _replace(raw: Any, injected: dict[str, Any]) -> None:
    raw.clear()
    raw.update(copy.deepcopy(injected))


def admit(
    state: State,
    pod: dict[str, Any],
    pipelines: Any,
    namespaces: Any,
    warnings: list[str],
    dryrun: bool,
) -> dict[str, Any] | None:
    """The injected pod, or None to admit `pod` unchanged (saying why when the pod asked)."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    inherited = next(iter(namespaces.get(namespace, ())), None)
    namespace_annotations = None if inherited is None else {markers.INJECT_ANNOTATION: inherited}

    def catalog(ns: str) -> Iterable[resolve.Target]:
        return list(pipelines.get(ns, ()))

    decision = resolve.decide(pod, namespace, namespace_annotations, catalog)
    target = decision.target
    if target is None or target.pipeline is None:
        if decision.warning:
            _skip(state, pod, decision.reason, decision.message, decision.about, warnings, dryrun)
        return None
    try:
        return transform.inject(
            pod,
            target.pipeline,
            cluster_version=state.version,
            config_hash=target.config_hash or "",
            image=state.config.agent_image,
        )
    except transform.Refusal as refusal:
        _skip(state, pod, refusal.reason, refusal.message, target, warnings, dryrun)
        return None


def _skip(
    state: State,
    pod: dict[str, Any],
    reason: str,
    message: str,
    about: resolve.Target | None,
    warnings: list[str],
    dryrun: bool,
) -> None:
    text = f"no OTLP agent injected ({reason}): {message}"
    warnings.append(text)
    subject = _subject(pod)
    _log.warning("%s %s/%s: %s", subject["kind"], subject["metadata"]["namespace"], _name(subject), text)
    if dryrun or state.client is None:
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


def _post(state: State, regarding: dict[str, Any], reason: str, message: str) -> None:
    """Post a Warning Event in the background, at most once per EVENT_INTERVAL per object and reason."""
    meta = regarding["metadata"]
    key = (regarding["kind"], meta["namespace"], meta["name"], reason)
    now = time.monotonic()
    if now - state.posted.get(key, -EVENT_INTERVAL) < EVENT_INTERVAL:
        return
    state.posted[key] = now
    task = asyncio.create_task(_post_now(state, regarding, reason, message), name=f"event {reason}")
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _post_now(state: State, regarding: dict[str, Any], reason: str, message: str) -> None:
    if state.client is None:
        return
    try:
        await state.client.post_event(regarding, True, reason, message, reconciler.utc_now())
    except kube.ApiError as exc:  # the admission warning and the log already say it
        _log.warning("could not post event %s: %s", reason, exc)


def _rolls_on_change(spec: kopf.Spec, **_: Any) -> bool:
    injection = spec.get("injection") or {}
    return spec.get("mode") == "sidecar" and bool(injection.get("rolloutOnChange"))


def _publishes_copies(spec: kopf.Spec, **_: Any) -> bool:
    allowed = (spec.get("injection") or {}).get("allowed") or {}
    return spec.get("mode") == "sidecar" and bool(allowed.get("namespaces"))


def _register_config_copies(registry: kopf.OperatorRegistry, state: State) -> None:
    common: dict[str, Any] = {"registry": registry, "id": "publish-sidecar-config", "when": _publishes_copies}

    @kopf.on.resume(*RESOURCE, **common)
    @kopf.on.create(*RESOURCE, **common)
    @kopf.on.update(*RESOURCE, **common)
    async def publish(body: kopf.Body, **_: Any) -> None:
        target = resolve.target_of(validation.plain(body))
        if target.pipeline is None or state.client is None:
            return
        for obj in configcopy.build(target.pipeline):
            try:
                await state.client.create(obj)
            except kube.ApiError as exc:
                if exc.status == 409:  # published already (immutable and named by its hash)
                    continue
                if exc.transient:
                    raise kopf.TemporaryError(f"publishing {obj['metadata']}: {exc}", delay=5) from exc
                _log.warning(
                    "cannot publish the config in namespace %s: %s", obj["metadata"]["namespace"], exc
                )


def _register_rollout(registry: kopf.OperatorRegistry, state: State) -> None:
    common: dict[str, Any] = {"registry": registry, "id": "rollout-stale-sidecars", "when": _rolls_on_change}

    @kopf.on.resume(*RESOURCE, **common)
    @kopf.on.create(*RESOURCE, **common)
    @kopf.on.update(*RESOURCE, **common)
    async def roll(body: kopf.Body, **_: Any) -> None:
        target = resolve.target_of(validation.plain(body))
        if target.pipeline is None or target.config_hash is None or state.client is None:
            return  # an invalid spec publishes no new config: nothing is stale
        injection = target.pipeline.spec.injection or spec.Injection()
        namespaces = {target.namespace, *injection.allowed.namespaces}
        try:
            report = await sidecar_restarts.roll(
                state.client,
                (target.namespace, target.name),
                namespaces,
                target.config_hash,
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
        message = f"restarted for config {report.config_hash}: {names}"
        with contextlib.suppress(kube.ApiError):
            await client.post_event(obj, False, "RolloutRestarted", message, now)
