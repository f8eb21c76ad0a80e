"""The kopf handlers: thin adapters from kopf's events to `reconcile` (the only place, with the webhook,
that knows kopf's error types).

- pipeline created, updated, or resumed (operator start): `reconcile`; a transient API error becomes
  `kopf.TemporaryError(delay=retry_delay)`, so kopf retries it;
- any event on a child kind carrying the pipeline label: `reconcile` of its pipeline when the child was
  deleted, edited, or (workloads) changed status (see `children`);
- any event on a pipeline (including its deletion): `reconcile` of the pipelines whose `pipelineRef`
  to it now resolves differently (see `pipelinerefs.ReferrerIndex`); an event handler, not on.delete,
  so no finalizer is added;
- every `drift_interval` seconds: `reconciler.drift_check` over every known pipeline, which restores
  anything no event told us about (a child that lost its label, a missed watch event);
- every second: `reconcile` of the pipelines whose agents are still picking up a config
  (`Context.followups`), so `ConfigApplied` and `status.configRollout` follow them.

kopf never pauses those two loops, so each pass first asks `leadership` whether this replica leads; a
paused one skips the pass and forgets its follow-ups and what it applied (`forget_while_paused`).

The startup handler also starts the probes (`health`): `/readyz` is ready once the webhook server listens
with its certificate and, with injection, the pod webhook's caches are filled and not stale
(`stale_caches`). With peering, kopf runs the startup handlers on every replica (they are not paused), so
every replica serves probes and webhooks, while the resource handlers above run only on the replica that
is not paused.

With `--webhook-tls-secret`, a task on every replica keeps the webhook's own certificate current
(`reconcile.webhook_tls`): until its first round succeeds the webhook server has no certificate and the
replica is not ready.

The drift check is one operator-wide task rather than a `kopf.timer`: kopf puts a finalizer on every
object that has timers, and the operator wants none, so a pipeline can be deleted (and its children
garbage-collected) even while the operator is down or uninstalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from otlp_agent.api import spec

from otlp_operator import metrics as operator_metrics
from otlp_operator import naming, validation
from otlp_operator.edge import (
    health,
    injection_handlers,
    injection_state,
    leadership,
    pipeline_webhook,
    webhook_server,
)
from otlp_operator.edge.settings import OperatorConfig
from otlp_operator.reconcile import config_rollout, kube, reconciler, webhook_tls

RESOURCE = (spec.API_GROUP, spec.API_VERSION, spec.PLURAL)
_log = logging.getLogger(__name__)


def raise_for(outcome: reconciler.Outcome, retry_delay: float) -> None:
    """Turn a failed reconcile into kopf's retry signal; a permanent failure waits for the drift check."""
    error = outcome.error
    if error is not None and error.transient:
        raise kopf.TemporaryError(f"applying children failed: {error}", delay=retry_delay)


async def tls_loop(client: kube.Kube, tls: webhook_tls.Tls, retry_delay: float) -> None:
    """Keep the webhook certificate, its files and the configurations' caBundle current until cancelled.

    A Secret that is gone and may not be created is reported once as an error (it needs a user), then
    retried quietly until it is back."""
    missing_reported = False
    while True:
        try:
            await webhook_tls.sync(client, tls, datetime.datetime.now(datetime.UTC))
        except webhook_tls.SecretMissing as exc:
            if not missing_reported:
                _log.error("%s", exc)
                missing_reported = True
            await asyncio.sleep(retry_delay)
            continue
        except (kube.ApiError, OSError, ValueError) as exc:  # API, files, a corrupt Secret: retry
            _log.warning("keeping the webhook certificate current failed (retrying): %s", exc)
            await asyncio.sleep(retry_delay)
            continue
        missing_reported = False
        await asyncio.sleep(tls.interval)


async def drift_loop(ctx: reconciler.Context, interval: float, lead: leadership.Leadership) -> None:
    """Run the drift check every `interval` seconds (after the previous pass ended) until cancelled, while
    this replica leads."""
    while True:
        await asyncio.sleep(interval)
        if not await leading(ctx, lead):
            continue
        for key, error in await reconciler.drift_check(ctx):
            _log.warning("drift check of %s/%s failed: %s", key.namespace, key.name, error)


async def followup_loop(ctx: reconciler.Context, lead: leadership.Leadership, interval: float = 1.0) -> None:
    """Reconcile, until cancelled, every pipeline whose follow-up time has come, while this replica leads."""
    while True:
        await asyncio.sleep(interval)
        now = asyncio.get_running_loop().time()
        if not any(due <= now for due in ctx.followups.values()) or not await leading(ctx, lead):
            continue
        for key in [k for k, due in ctx.followups.items() if due <= now]:
            ctx.followups.pop(key, None)
            try:
                await reconciler.reconcile_by_name(ctx, key)
            except kube.ApiError as exc:  # the drift check retries
                _log.warning("following the config rollout of %s failed: %s", key, exc)


async def leading(ctx: reconciler.Context, lead: leadership.Leadership) -> bool:
    """Whether this replica leads (kopf peering); a paused one forgets what its loops would act on."""
    try:
        leads = await lead.check()
    except kube.ApiError as exc:  # the next pass asks again; nothing is forgotten for a failed read
        _log.warning("reading the peering object failed (skipping this pass): %s", exc)
        return False
    if not leads:
        forget_while_paused(ctx)
    return leads


def forget_while_paused(ctx: reconciler.Context) -> None:
    """Drop what the loops and child events act on: pending follow-ups, confirmed rollouts, and the children
    applied (the leader changes them meanwhile). The pipelines stay known, so if this replica leads again
    (kopf does not resume handlers for objects it handled before) its drift check covers them at once."""
    ctx.followups.clear()
    ctx.rollouts = config_rollout.Memory()
    for key in ctx.index.pipelines():
        ctx.index.forget(key)
        ctx.index.know(key)


def context_of(memo: kopf.Memo) -> reconciler.Context:
    """The reconcile context the startup handler put in the operator's memo.

    kopf gives every resource handler a shallow copy of the operator-wide memo, made when kopf first sees
    the object (after startup), so the one Context is shared by every handler."""
    found: reconciler.Context = memo[injection_handlers.RECONCILE_CONTEXT]
    return found


def readiness(config: OperatorConfig, memo: kopf.Memo, settings: kopf.OperatorSettings) -> list[health.Check]:
    """What must hold before this replica may receive admission reviews."""
    checks: list[health.Check] = []
    server = settings.admission.server
    if isinstance(server, webhook_server.WebhookServer):
        checks.append(server.waiting_for)
    if config.injection and config.webhook is not None:
        checks.append(lambda: injection_state.waiting_for(memo))
        checks.append(lambda: stale_caches(memo))
    return checks


def stale_caches(memo: kopf.Memo) -> str | None:
    """The pod webhook's caches whose list/watch has been failing too long (`informer.STALE_AFTER`): such a
    replica would answer from what it saw before, so it is not ready until the watch works again."""
    state = injection_state.injection_of(memo)
    stale = [why for why in (i.stale() for i in state.informers) if why] if state is not None else []
    return "the pod webhook's watches, failing: " + ", ".join(stale) if stale else None


def observe_webhooks(settings: kopf.OperatorSettings, metrics: operator_metrics.OperatorMetrics) -> None:
    """Let our webhook server count its reviews, naming the webhooks it serves (others count as other)."""
    server = settings.admission.server
    if isinstance(server, webhook_server.WebhookServer):
        server.metrics = metrics
        server.webhooks = {pipeline_webhook.WEBHOOK_ID, injection_handlers.WEBHOOK_ID}


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator (what `otlp-operator run` runs)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        metrics = operator_metrics.of(memo)
        ctx = memo[injection_handlers.RECONCILE_CONTEXT] = reconciler.Context(
            kube.Kube.connect(),
            config.agent_image,
            count_injected=config.injection,
            metrics=metrics,
            rollout_settings=config_rollout.Settings(config.refresh_pods, config.kubelet_sync_period),
        )
        ctx.client.on_error = metrics.api_error
        observe_webhooks(settings, metrics)
        lead = leadership.Leadership(ctx.client, settings, config.namespaces)
        memo["drift_task"] = asyncio.create_task(
            drift_loop(ctx, config.drift_interval, lead), name="drift check"
        )
        memo["followup_task"] = asyncio.create_task(followup_loop(ctx, lead), name="config rollouts")
        if config.webhook is not None and config.webhook.tls is not None and "tls_task" not in memo:
            loop = tls_loop(ctx.client, config.webhook.tls, config.retry_delay)
            memo["tls_task"] = asyncio.create_task(loop, name="webhook certificate")
        if config.health is not None and "health" not in memo:
            probes = memo["health"] = health.HealthServer(
                *config.health, checks=readiness(config, memo, settings), metrics=metrics.exposition
            )
            await probes.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        for key in ("drift_task", "followup_task", "tls_task"):
            task: asyncio.Task[None] | None = memo.pop(key, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        ctx: reconciler.Context | None = memo.pop(injection_handlers.RECONCILE_CONTEXT, None)
        if ctx is not None:
            ctx.client.close()
        probes: health.HealthServer | None = memo.pop("health", None)
        if probes is not None:
            await probes.stop()

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-on-resume")
    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-on-create")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-on-update")
    async def changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            outcome = await reconciler.reconcile(context_of(memo), body)
        except kube.ApiError as exc:
            if exc.transient:
                raise kopf.TemporaryError(str(exc), delay=config.retry_delay) from exc
            raise kopf.PermanentError(str(exc)) from exc
        raise_for(outcome, config.retry_delay)

    @kopf.on.event(*RESOURCE, registry=registry, id="referrers")
    async def target_event(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        body = event.get("object") or {}
        if event.get("type") == "DELETED":
            context_of(memo).metrics.forget(naming.PipelineKey.of(dict(body)))
        try:
            await reconciler.referrers_of(context_of(memo), str(event.get("type")), body)
        except kube.ApiError as exc:  # the drift check retries
            _log.warning(
                "reconciling the referrers of %s failed: %s", body.get("metadata", {}).get("name"), exc
            )

    for kind in kube.CHILD_KINDS:
        _watch_children(registry, kind)
    if config.webhook is not None:
        pipeline_webhook.register(registry)
    if config.injection:
        injection_handlers.register(registry, config)
    return registry


def _watch_children(registry: kopf.OperatorRegistry, kind: str) -> None:
    resource = kube.RESOURCES[kind]

    async def child_event(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        obj = {**validation.plain(event.get("object") or {}), "kind": kind}
        ctx = context_of(memo)
        key = ctx.index.owner_to_reconcile(str(event.get("type")), obj)
        if key is None:
            return
        try:
            await reconciler.reconcile_by_name(ctx, key)
        except kube.ApiError as exc:  # the drift check retries
            _log.warning("reconciling %s after a %s event failed: %s", key, kind, exc)

    kopf.on.event(
        resource.group,
        resource.version,
        resource.plural,
        labels={naming.PIPELINE_LABEL: kopf.PRESENT},
        registry=registry,
        id=f"child-{resource.plural}",
    )(child_event)
