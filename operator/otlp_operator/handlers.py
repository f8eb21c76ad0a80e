"""The kopf handlers: thin adapters from kopf's events to `reconcile` (the only place, with the webhook,
that knows kopf's error types).

- pipeline created, updated, or resumed (operator start): `reconcile`; a transient API error becomes
  `kopf.TemporaryError(delay=retry_delay)`, so kopf retries it;
- any event on a child kind carrying the pipeline label: `reconcile` of its pipeline when the child was
  deleted, edited, or (workloads) changed status (see `children`);
- any event on a pipeline (including its deletion): `reconcile` of the pipelines whose `pipelineRef`
  to it now resolves differently (see `pipelinerefs.ReferrerIndex`); an event handler, not on.delete,
  so no finalizer is added;
- every `drift_interval` seconds: `reconcile.drift_check` over every known pipeline, which restores
  anything no event told us about (a child that lost its label, a missed watch event).

The drift check is one operator-wide task rather than a `kopf.timer`: kopf puts a finalizer on every
object that has timers, and the operator wants none, so a pipeline can be deleted (and its children
garbage-collected) even while the operator is down or uninstalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from otlp_agent import spec

from otlp_operator import injection_handlers, kube, naming, reconcile, validation, webhooks
from otlp_operator.settings import OperatorConfig

RESOURCE = (spec.API_GROUP, spec.API_VERSION, spec.PLURAL)
_log = logging.getLogger(__name__)


def raise_for(outcome: reconcile.Outcome, retry_delay: float) -> None:
    """Turn a failed reconcile into kopf's retry signal; a permanent failure waits for the drift check."""
    error = outcome.error
    if error is not None and error.transient:
        raise kopf.TemporaryError(f"applying children failed: {error}", delay=retry_delay)


async def drift_loop(ctx: reconcile.Context, interval: float) -> None:
    """Run the drift check every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        for key, error in await reconcile.drift_check(ctx):
            _log.warning("drift check of %s/%s failed: %s", key.namespace, key.name, error)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator (what `otlp-operator run` runs)."""
    registry = kopf.OperatorRegistry()
    holder: dict[str, Any] = {}

    def context() -> reconcile.Context:
        found: reconcile.Context = holder["context"]
        return found

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        holder["context"] = reconcile.Context(kube.Kube.connect(), config.agent_image)
        holder["drift"] = asyncio.create_task(
            drift_loop(context(), config.drift_interval), name="drift check"
        )

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        if "drift" in holder:
            holder["drift"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder.pop("drift")
        if "context" in holder:
            holder.pop("context").client.close()

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-on-resume")
    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-on-create")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-on-update")
    async def changed(body: kopf.Body, **_: Any) -> None:
        try:
            outcome = await reconcile.reconcile(context(), body)
        except kube.ApiError as exc:
            if exc.transient:
                raise kopf.TemporaryError(str(exc), delay=config.retry_delay) from exc
            raise kopf.PermanentError(str(exc)) from exc
        raise_for(outcome, config.retry_delay)

    @kopf.on.event(*RESOURCE, registry=registry, id="referrers")
    async def target_event(event: Mapping[str, Any], **_: Any) -> None:
        body = event.get("object") or {}
        try:
            await reconcile.referrers_of(context(), str(event.get("type")), body)
        except kube.ApiError as exc:  # the drift check retries
            _log.warning(
                "reconciling the referrers of %s failed: %s", body.get("metadata", {}).get("name"), exc
            )

    for kind in kube.CHILD_KINDS:
        _watch_children(registry, kind, context)
    if config.webhook is not None:
        webhooks.register(registry)
    if config.injection:
        injection_handlers.register(registry, config)
    return registry


def _watch_children(registry: kopf.OperatorRegistry, kind: str, context: Any) -> None:
    resource = kube.RESOURCES[kind]

    async def child_event(event: Mapping[str, Any], **_: Any) -> None:
        obj = {**validation.plain(event.get("object") or {}), "kind": kind}
        ctx: reconcile.Context = context()
        key = ctx.index.owner_to_reconcile(str(event.get("type")), obj)
        if key is None:
            return
        try:
            await reconcile.reconcile_by_name(ctx, key)
        except kube.ApiError as exc:  # the drift check retries
            _log.warning("reconciling %s/%s after a %s event failed: %s", key.namespace, key.name, kind, exc)

    kopf.on.event(
        resource.group,
        resource.version,
        resource.plural,
        labels={naming.PIPELINE_LABEL: kopf.PRESENT},
        registry=registry,
        id=f"child-{resource.plural}",
    )(child_event)
