"""What the pod webhook knows, kept in memory (pure): every pipeline as a `resolve.Target`, by namespace,
and the `inject` annotation of every namespace that has one.

Fed by list/watch results (`replace_*` after a (re)list, `apply_*` per watch event; `reconcile.informer`
calls them), so the webhook makes no API call and answers within milliseconds. A namespace whose
annotation is removed, or a pipeline that is deleted, is forgotten at once: the entry goes, it is never
kept at its last value. A pipeline is parsed, validated and hashed once per change, not per pod.
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
        self._pipelines = {}
        for item in items:
            self.apply_pipeline("ADDED", item)

    def apply_pipeline(self, event: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        known = self._pipelines.setdefault(namespace, {})
        if event == "DELETED":
            known.pop(name, None)
        else:
            known[name] = resolve.target_of(obj)
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
