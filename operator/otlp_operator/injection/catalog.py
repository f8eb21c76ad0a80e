"""What the pod webhook knows, kept in memory (pure): every pipeline as a `resolve.Target`, by namespace,
and the `inject` annotation of every namespace that has one.

Fed by list/watch results (`replace_*` after a (re)list, `apply_*` per watch event; `reconcile.informer`
calls them), so the webhook makes no API call and answers within milliseconds. A namespace whose
annotation is removed, or a pipeline that is deleted, is forgotten at once: the entry goes, it is never
kept at its last value. A pipeline is parsed, validated and hashed once per change, not per pod.

A sidecar pipeline whose spec is newer than its published config (`resolve.Target.behind`: edited and not
reconciled yet, reconcile failing, or no replica reconciling during a failover) keeps its previous target,
the last one whose container and ConfigMap came from the same spec, so a pod never gets the new spec's
container with the old spec's config. Without one (the pipeline is new to this replica) the target stays
behind and the pod gets nothing (`NotPublished`). A relist keeps those previous targets too.
"""

from __future__ import annotations

from typing import Any

from otlp_operator.injection import markers, resolve


class Catalog:
    """Pipelines by namespace and namespace `inject` annotations, as last listed and watched."""

    def __init__(self) -> None:
        self._pipelines: dict[str, dict[str, resolve.Target]] = {}
        self._annotations: dict[str, str] = {}

    def pipelines(self, namespace: str) -> list[resolve.Target]:
        """The pipelines known in `namespace` (a `resolve.Catalog`)."""
        return list(self._pipelines.get(namespace, {}).values())

    def namespace_annotations(self, namespace: str) -> dict[str, str] | None:
        """The namespace's `inject` annotation as an annotations dict, or None when it has none."""
        value = self._annotations.get(namespace)
        return None if value is None else {markers.INJECT_ANNOTATION: value}

    def replace_pipelines(self, items: list[dict[str, Any]]) -> None:
        before, self._pipelines = self._pipelines, {}
        for item in items:
            metadata = item.get("metadata") or {}
            namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
            previous = before.get(namespace, {}).get(name)
            self._pipelines.setdefault(namespace, {})[name] = _served(resolve.target_of(item), previous)

    def apply_pipeline(self, event: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        known = self._pipelines.setdefault(namespace, {})
        if event == "DELETED":
            known.pop(name, None)
        else:
            known[name] = _served(resolve.target_of(obj), known.get(name))
        if not known:
            del self._pipelines[namespace]

    def replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        self._annotations = {}
        for item in items:
            self.apply_namespace("ADDED", item)

    def apply_namespace(self, event: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        name = str(metadata.get("name") or "")
        value = (metadata.get("annotations") or {}).get(markers.INJECT_ANNOTATION)
        if event == "DELETED" or value is None:
            self._annotations.pop(name, None)
        else:
            self._annotations[name] = str(value)


def _served(new: resolve.Target, previous: resolve.Target | None) -> resolve.Target:
    """`new`, unless it is a sidecar pipeline's spec that is not published yet and the same pipeline's
    previous target had its published config: that one is served until the new spec is published."""
    if previous is None or not new.behind:
        return new
    published = previous.uid == new.uid and previous.sidecar and previous.config_map is not None
    return previous if published else new
