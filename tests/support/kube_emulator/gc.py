"""Garbage collection and the other "controllers" a bare API server relies on for deletion.

* ownerReferences: when an owner is removed, dependents that have no other live owner are deleted
  (background); propagationPolicy=Orphan strips the ownerReference instead; Foreground keeps the owner
  (deletionTimestamp + `foregroundDeletion` finalizer) until its dependents are gone. A dependent created
  with only dangling owners is deleted too, as the real garbage collector does.
* Namespaces: deleting one marks it Terminating, deletes everything in it, and removes it when empty.
* CRDs: deleting one deletes all its custom resources, then the CRD (`customresourcecleanup` finalizer).

Deletions made here skip admission webhooks (the real controllers' calls would go through them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .apiserver import ApiServer

FOREGROUND = "foregroundDeletion"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES = ("", "namespaces")


class GarbageCollector:
    def __init__(self, api: ApiServer) -> None:
        self._api = api

    def dependents(self, uid: str) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        return [
            (storage, obj)
            for storage, obj in self._api.store.all_objects()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def orphan(self, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for storage, obj in self.dependents(uid):
            refs = [r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid]
            self._api.write_internal(storage, obj, {"ownerReferences": refs or None})

    def delete_dependents(self, owner: dict[str, Any]) -> None:
        for storage, obj in self.dependents(owner["metadata"]["uid"]):
            if not obj["metadata"].get("deletionTimestamp"):
                self._api.delete_internal(storage, obj, "Background")

    def _live_owner(self, obj: dict[str, Any], ref: dict[str, Any]) -> bool:
        found = self._api.store.by_uid(ref.get("uid", ""))
        if found is None:
            return False
        owner_ns = found[1]["metadata"].get("namespace")
        return owner_ns is None or owner_ns == obj["metadata"].get("namespace")

    def check_dangling(self, storage: tuple[str, str], obj: dict[str, Any]) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(self._live_owner(obj, ref) for ref in refs):
            current = self._api.store.get(
                storage, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            )
            if current is not None and not current["metadata"].get("deletionTimestamp"):
                self._api.delete_internal(storage, current, "Background")

    def on_removed(self, storage: tuple[str, str], obj: dict[str, Any]) -> None:
        """React to an object leaving the store: cascade to dependents, release waiting owners."""
        for dep_storage, dependent in self.dependents(obj["metadata"]["uid"]):
            self.check_dangling(dep_storage, dependent)
        for ref in obj["metadata"].get("ownerReferences") or []:
            self._release_foreground_owner(ref.get("uid", ""))
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self.finish_namespace(namespace)
        rt = self._api.registry.any_for_storage(storage)
        if rt is not None and rt.crd_name:
            self.finish_crd(rt.crd_name)

    def _release_foreground_owner(self, uid: str) -> None:
        found = self._api.store.by_uid(uid)
        if found is None:
            return
        storage, owner = found
        if FOREGROUND in (owner["metadata"].get("finalizers") or []) and not self.dependents(uid):
            self._api.remove_finalizer(storage, owner, FOREGROUND)

    def finish_namespace(self, namespace: str) -> None:
        ns = self._api.store.get(NAMESPACES, "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if not self._api.store.in_namespace(namespace) and not ns["metadata"].get("finalizers"):
            self._api.remove_now(NAMESPACES, ns)

    def start_namespace_deletion(self, ns: dict[str, Any]) -> None:
        for storage, obj in self._api.store.in_namespace(ns["metadata"]["name"]):
            if not obj["metadata"].get("deletionTimestamp"):
                self._api.delete_internal(storage, obj, "Background")
        self.finish_namespace(ns["metadata"]["name"])

    def start_crd_deletion(self, crd: dict[str, Any]) -> None:
        for rt in self._api.registry.types_of_crd(crd["metadata"]["name"])[:1]:
            for obj in self._api.store.list(rt.storage_key):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._api.delete_internal(rt.storage_key, obj, "Background")
        self.finish_crd(crd["metadata"]["name"])

    def finish_crd(self, crd_name: str) -> None:
        crd = self._api.store.get(CRDS, "", crd_name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        remaining = [
            rt for rt in self._api.registry.types_of_crd(crd_name)[:1] if self._api.store.list(rt.storage_key)
        ]
        if not remaining and CRD_CLEANUP in (crd["metadata"].get("finalizers") or []):
            self._api.remove_finalizer(CRDS, crd, CRD_CLEANUP)
