"""Deletion semantics: preconditions, admission for DELETE, finalizers and deletionTimestamp,
propagationPolicy (Background, Foreground, Orphan), graceful pod deletion, and the controller-side writes the
garbage collector, namespace and CRD cleanup use. Mixed into :class:`apiserver.ApiServer`.

Graceful pod deletion, as the real API server does it: deleting a pod bound to a node (`spec.nodeName`) and
not finished (`status.phase` neither Succeeded nor Failed) with a grace period above 0
(`DeleteOptions.gracePeriodSeconds`, else the pod's `terminationGracePeriodSeconds`, else 30) only sets
`deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds`: the object stays until its kubelet has
stopped the containers and deletes it again with grace 0 (the test kubelet does). A later delete with a
shorter grace shortens it. Unbound or finished pods, and grace 0, go at once. Workload controllers see the
terminating pod meanwhile, which is how a StatefulSet waits for a replica to be gone before making
another with its name.
"""

from __future__ import annotations

import copy
import datetime
from typing import TYPE_CHECKING, Any

from . import admission, builtins, errors, gc, store
from .resources import ResourceType

PODS = ("", "pods")
_DEFAULT_GRACE = 30

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
        grace = options.get("gracePeriodSeconds")
        return self.render(
            rt, self.delete_internal(rt.storage_key, current, policy, None if grace is None else int(grace))
        )

    def delete_internal(
        self, storage: tuple[str, str], obj: dict[str, Any], policy: str, grace: int | None = None
    ) -> dict[str, Any]:
        """Delete or start deleting an object (no admission); returns its latest state."""
        if storage == PODS:
            seconds = _pod_grace(obj, grace)
            if seconds > 0:
                return self._terminate_pod(obj, seconds)
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

    def _terminate_pod(self, obj: dict[str, Any], seconds: int) -> dict[str, Any]:
        """Graceful deletion: mark the pod, keep it until its kubelet deletes it with grace 0."""
        meta = obj["metadata"]
        until = _after(seconds)
        if meta.get("deletionTimestamp") and meta["deletionTimestamp"] <= until:
            return obj  # already terminating, and no sooner than this would make it
        return self.write_internal(
            PODS,
            obj,
            {
                "deletionTimestamp": until,
                "deletionGracePeriodSeconds": seconds,
                "generation": meta.get("generation", 1) + (0 if meta.get("deletionTimestamp") else 1),
            },
        )

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


def _pod_grace(pod: dict[str, Any], asked: int | None) -> int:
    """The grace period a pod deletion gets (0: removed at once)."""
    spec, phase = pod.get("spec") or {}, (pod.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    if asked is not None:
        return max(0, asked)
    return int(spec.get("terminationGracePeriodSeconds", _DEFAULT_GRACE))


def _after(seconds: int) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
