"""How many pods run a sidecar pipeline's agent, and with which pod-level settings: `status.injected`.

A sidecar pipeline has no workload of its own; its agents live in the pods it was injected into. At each
reconcile (so at least every drift interval) the operator lists those pods the way stale-sidecar rollouts
find them (the `injected` label, in the pipeline's namespace and every namespace it allows, checked
against the exact pipeline annotation) and counts them: every pod not being deleted, those whose agent
container is ready, and how many mount each of the pipeline's ConfigMaps (the `agent-config` annotation:
the pod-level settings it was injected with; every sidecar reloads the config of the ConfigMap it mounts,
so the pods mounting the published one run the current config). The status holds the counts, the
published ConfigMap's share, and the most common ConfigMaps (at most `HASH_LIMIT`, the largest first: the
list stays small however many pods or old settings there are). A namespace the operator may not list
pods in is named in `unreadableNamespaces` (its pods are not counted; always present, as the CRD defaults
it) instead of failing the reconcile.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from otlp_operator import naming
from otlp_operator.injection import markers
from otlp_operator.reconcile import kube

#: ConfigMaps listed in `status.injected.byConfigMap` (the counts are always complete).
HASH_LIMIT = 10


def agent_ready(pod: dict[str, Any]) -> bool:
    """True when the pod's agent container (native sidecar or regular container) reports ready."""
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return any(s.get("name") == naming.CONTAINER and s.get("ready") is True for s in statuses)


def summarize(
    pods: Iterable[dict[str, Any]], key: naming.PipelineKey, config_map: str | None
) -> dict[str, Any]:
    """`status.injected` for the pods injected from pipeline `key`, the published ConfigMap being
    `config_map`."""
    hashes: collections.Counter[str] = collections.Counter()
    ready = 0
    for pod in pods:
        marker = markers.read(pod)
        if marker is None or (marker.namespace, marker.name) != key:
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        hashes[marker.config_map or ""] += 1
        ready += agent_ready(pod)
    listed = sorted(hashes.items(), key=lambda item: (-item[1], item[0]))[:HASH_LIMIT]
    return {
        "pods": sum(hashes.values()),
        "ready": ready,
        "current": hashes.get(config_map or "", 0) if config_map else 0,
        "byConfigMap": [{"configMap": found, "pods": count} for found, count in listed],
    }


async def census(
    client: kube.Kube, key: naming.PipelineKey, namespaces: Iterable[str], config_map: str | None
) -> dict[str, Any]:
    """List the pods injected from `key` in `namespaces` and summarize them."""
    pods: list[dict[str, Any]] = []
    unreadable = []
    for namespace in sorted(set(namespaces)):
        try:
            pods += await client.list("Pod", namespace, markers.selector(key.name))
        except kube.ApiError as exc:
            if exc.transient:
                raise
            unreadable.append(namespace)  # e.g. 403: a namespace outside the operator's RBAC
    return {**summarize(pods, key, config_map), "unreadableNamespaces": unreadable}
