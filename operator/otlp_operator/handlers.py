"""The kopf handlers: thin adapters from kopf's events to `reconcile` (the only place that knows kopf's
error types, besides the webhook).

- pipeline created, updated, or resumed (operator start): `reconcile`; a transient API error becomes
  `kopf.TemporaryError(delay=retry_delay)`, so kopf retries it;
- every `drift_interval` seconds per pipeline (`kopf.timer`): `reconcile`, which restores anything no
  event told us about;
- any event on a child kind carrying the pipeline label: `reconcile` of its pipeline when the child was
  deleted, edited, or (workloads) changed status (see `children`).

Events are posted with `kopf.event`, so they appear in `kubectl describe otlpp NAME`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from otlp_agent import spec

from otlp_operator import kube, naming, reconcile, validation, webhooks
from otlp_operator.settings import OperatorConfig

RESOURCE = (spec.API_GROUP, spec.API_VERSION, spec.PLURAL)
_log = logging.getLogger(__name__)


def emit(body: Mapping[str, Any], warning: bool, reason: str, message: str) -> None:
    """Post a Kubernetes Event about the pipeline through kopf's event poster."""
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    kopf.event(target, type="Warning" if warning else "Normal", reason=reason, message=message[:1024])


def raise_for(outcome: reconcile.Outcome, retry_delay: float) -> None:
    """Turn a failed reconcile into kopf's retry signal; a permanent failure waits for the drift check."""
    error = outcome.error
    if error is not None and error.transient:
        raise kopf.TemporaryError(f"applying children failed: {error}", delay=retry_delay)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator (what `otlp-operator run` runs)."""
    registry = kopf.OperatorRegistry()
    holder: dict[str, reconcile.Context] = {}

    def context() -> reconcile.Context:
        return holder["context"]

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def connect(**_: Any) -> None:
        holder["context"] = reconcile.Context(kube.Kube.connect(), config.agent_image)

    @kopf.on.cleanup(registry=registry)
    def disconnect(**_: Any) -> None:
        if "context" in holder:
            holder.pop("context").client.close()

    async def run(body: kopf.Body) -> None:
        try:
            outcome = await reconcile.reconcile(context(), body, emit)
        except kube.ApiError as exc:
            if exc.transient:
                raise kopf.TemporaryError(str(exc), delay=config.retry_delay) from exc
            raise kopf.PermanentError(str(exc)) from exc
        raise_for(outcome, config.retry_delay)

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-on-resume")
    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-on-create")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-on-update")
    async def changed(body: kopf.Body, **_: Any) -> None:
        await run(body)

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="drift-check",
        interval=config.drift_interval,
        initial_delay=config.drift_interval,
    )
    async def drift(body: kopf.Body, **_: Any) -> None:
        await run(body)

    for kind in kube.CHILD_KINDS:
        _watch_children(registry, kind, context)
    if config.webhook is not None:
        webhooks.register(registry)
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
            await reconcile.reconcile_by_name(ctx, key, emit)
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
