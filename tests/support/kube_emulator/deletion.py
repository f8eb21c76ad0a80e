"""Deletion semantics: preconditions, admission for DELETE, finalizers and deletionTimestamp,
propagationPolicy (Background, Foreground, Orphan), and the controller-side writes the garbage collector,
namespace and CRD cleanup use. Mixed into :class:`apiserver.ApiServer`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import admission, builtins, errors, gc, store
from .resources import ResourceType

if TYPE_CHECKING:
    from .apiserver import Options
    from .resources import Registry
    from .store import Store


class DeletionMixin:
    """Needs the ApiServer's store, registry, admission, gc, render() and _current()."""

    store: Store
    registry: Registry
    admission: admission.Admission
    gc: gc.GarbageCollector

    def render(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _current(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- delete ------------------------------------------------------------------------------------------

    async def delete(
        self, rt: ResourceType, namespace: str, name: str, options: dict[str, Any], opts: Options
    ) -> dict[str, Any]:
        current = self._current(rt, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") not in (None, current["metadata"]["uid"]):
            raise errors.conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {current['metadata']['uid']}",
            )
        if pre.get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
            raise errors.conflict(rt.plural, name, rt.group)
        req = admission.Request(
            "DELETE", rt, None, self.render(rt, current), None, opts.dry_run, opts.warnings
        )
        await self.admission.validate(req)
        if opts.dry_run:
            return self.render(rt, current)
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy not in ("Orphan", "Background", "Foreground"):
            raise errors.bad_request(f'propagationPolicy "{policy}" is not supported')
        return self.render(rt, self.delete_internal(rt.storage_key, current, policy))

    def delete_internal(self, storage: tuple[str, str], obj: dict[str, Any], policy: str) -> dict[str, Any]:
        """Delete or start deleting an object (no admission); returns its latest state."""
        if policy == "Orphan":
            self.gc.orphan(obj)
            obj = (
                self.store.get(storage, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) or obj
            )
        extra: list[str] = []
        if policy == "Foreground" and self.gc.dependents(obj["metadata"]["uid"]):
            extra.append(gc.FOREGROUND)
        if storage == gc.CRDS:
            extra.append(gc.CRD_CLEANUP)
        finalizers = list(obj["metadata"].get("finalizers") or [])
        finalizers += [f for f in extra if f not in finalizers]
        if not finalizers and storage != gc.NAMESPACES:
            return self.remove_now(storage, obj)
        if not obj["metadata"].get("deletionTimestamp"):
            obj = self.write_internal(
                storage,
                obj,
                {
                    "deletionTimestamp": store.now(),
                    "deletionGracePeriodSeconds": 0,
                    "finalizers": finalizers or None,
                    "generation": obj["metadata"].get("generation", 1) + 1,
                },
                status={"phase": "Terminating"} if storage == gc.NAMESPACES else None,
            )
            self._start_cleanup(storage, obj, policy)
        return obj

    def _start_cleanup(self, storage: tuple[str, str], obj: dict[str, Any], policy: str) -> None:
        if storage == gc.NAMESPACES:
            self.gc.start_namespace_deletion(obj)
        elif storage == gc.CRDS:
            rt = self.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            assert rt is not None
            builtins.prepare(rt, obj, None)
            obj = self.store.write(storage, obj)
            self.gc.start_crd_deletion(obj)
        elif policy == "Foreground":
            self.gc.delete_dependents(obj)

    def write_internal(
        self,
        storage: tuple[str, str],
        obj: dict[str, Any],
        meta: dict[str, Any],
        status: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A controller-side write of metadata (None removes a key) and optionally status fields."""
        new = copy.deepcopy(obj)
        for key, value in meta.items():
            if value is None:
                new["metadata"].pop(key, None)
            else:
                new["metadata"][key] = value
        if status:
            new.setdefault("status", {}).update(status)
        return self.store.write(storage, new)

    def remove_finalizer(self, storage: tuple[str, str], obj: dict[str, Any], finalizer: str) -> None:
        left = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        stored = self.write_internal(storage, obj, {"finalizers": left or None})
        if stored["metadata"].get("deletionTimestamp") and not left:
            self.remove_now(storage, stored)

    def remove_now(self, storage: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        final = self.store.remove(storage, obj)
        if storage == gc.CRDS:
            self.registry.unregister_crd(final["metadata"]["name"])
        self.gc.on_removed(storage, final)
        return final
