"""What sidecar injection keeps for the life of the operator, in kopf's memo: the pod webhook's caches
(`catalog.Catalog`), the informers that fill them, and the state the handlers share.

The informers (`reconcile.informer`) run on every replica, whatever kopf's peering says, so every ready
replica can answer the pod webhook: pipelines of the watched namespaces (one informer per namespace, or
every namespace filtered here when the operator watches all of them or namespace globs) and namespaces
(cluster-scoped). Until both have listed once, `waiting_for` names them (`/readyz` is 503).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import math
import time
from collections.abc import Callable
from typing import Any

from otlp_operator import metrics as operator_metrics
from otlp_operator.edge.settings import OperatorConfig
from otlp_operator.injection import catalog
from otlp_operator.reconcile import informer, kube, sidecar_restarts

MEMO_KEY = "injection"
#: Until the server's version is known: regular containers work on every version.
UNKNOWN_VERSION = (1, 0)


@dataclasses.dataclass
class Injection:
    """What the injection handlers share for the life of the operator (in kopf's memo)."""

    config: OperatorConfig
    client: kube.Kube
    version: tuple[int, int] = UNKNOWN_VERSION
    limiter: sidecar_restarts.Limiter = dataclasses.field(default_factory=sidecar_restarts.Limiter)
    #: When an Event was last posted per (kind, namespace, name, reason), oldest first (the rate limit).
    posted: dict[tuple[str, ...], float] = dataclasses.field(default_factory=dict)
    #: Event posts under way.
    events: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    #: When dropping Events (too many under way or remembered) was last logged: at most once an interval.
    drop_logged: float = -math.inf
    clock: Callable[[], float] = time.monotonic
    catalog: catalog.Catalog = dataclasses.field(default_factory=catalog.Catalog)
    informers: list[informer.Informer] = dataclasses.field(default_factory=list)
    metrics: operator_metrics.OperatorMetrics = dataclasses.field(
        default_factory=operator_metrics.OperatorMetrics
    )

    @property
    def synced(self) -> bool:
        return bool(self.informers) and all(i.synced.is_set() for i in self.informers)

    async def wait_synced(self, timeout: float) -> bool:
        waits = [asyncio.create_task(i.synced.wait()) for i in self.informers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for task in pending:
                task.cancel()
        return self.synced


def injection_of(memo: Any) -> Injection | None:
    """The injection state the startup handler put in the operator's memo (None before it ran)."""
    found: Injection | None = memo.get(MEMO_KEY)
    return found


def waiting_for(memo: Any) -> str | None:
    """Readiness of the pod webhook: None when its caches are filled, else what it waits for."""
    state = injection_of(memo)
    if state is not None and state.synced:
        return None
    return "the pod webhook's caches of pipelines and namespaces"


def start_informers(state: Injection) -> None:
    """Pipelines of the watched namespaces (every namespace for globs, filtered here) and namespaces."""
    patterns = state.config.namespaces
    exact = bool(patterns) and not any(set(p) & set("*?[") for p in patterns)
    wanted = _namespace_filter(patterns)
    pipelines = kube.RESOURCES[kube.PIPELINE]
    for namespace in patterns if exact else ("",):
        state.informers.append(
            informer.Informer(
                state.client,
                pipelines.path(namespace),
                _filtered(state.catalog.replace_pipelines, wanted),
                _filtered_event(state.catalog.apply_pipeline, wanted),
            )
        )
    namespaces = kube.RESOURCES["Namespace"].path("")
    state.informers.append(
        informer.Informer(
            state.client, namespaces, state.catalog.replace_namespaces, state.catalog.apply_namespace
        )
    )
    for running in state.informers:
        running.start()


def _namespace_filter(patterns: tuple[str, ...]) -> Callable[[dict[str, Any]], bool]:
    def wanted(obj: dict[str, Any]) -> bool:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        return not patterns or any(fnmatch.fnmatchcase(namespace, p) for p in patterns)

    return wanted


def _filtered(
    replace: Callable[[list[dict[str, Any]]], None], wanted: Callable[[dict[str, Any]], bool]
) -> Callable[[list[dict[str, Any]]], None]:
    return lambda items: replace([item for item in items if wanted(item)])


def _filtered_event(
    apply: Callable[[str, dict[str, Any]], None], wanted: Callable[[dict[str, Any]], bool]
) -> Callable[[str, dict[str, Any]], None]:
    def filtered(kind: str, obj: dict[str, Any]) -> None:
        if wanted(obj):
            apply(kind, obj)

    return filtered
