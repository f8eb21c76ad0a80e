"""The API-server semantics of reads and writes, independent of HTTP.

Create, update (PUT), patch and delete follow kube-apiserver: mutating admission, then CRD pruning,
defaulting and validation (422 Invalid with field paths), then validating admission, then storage with a
new resourceVersion. uid/creationTimestamp/generation are system-managed; generation is bumped on
changes outside metadata and status (and when deletion starts); a stale resourceVersion is a 409 Conflict;
the status subresource is the only way to change status of kinds that declare it; an object with
finalizers is only marked (deletionTimestamp) until they are gone; no-op writes do not change anything.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import string
import uuid
from typing import Any

from . import admission, builtins, deletion, errors, gc, patch, schema, selectors, store, strategic
from .resources import Registry, ResourceType

SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
    "name",
    "resourceVersion",
)


@dataclasses.dataclass
class Options:
    """Per-request options: dryRun, fieldValidation (Strict/Warn/Ignore) and the warnings to send back."""

    dry_run: bool = False
    field_validation: str = "Warn"
    warnings: list[str] = dataclasses.field(default_factory=list)


class _Raced(Exception):
    """The object was written by someone else while an update of it waited on admission."""


class ApiServer(deletion.DeletionMixin):
    def __init__(self, registry: Registry, objects: store.Store) -> None:
        self.registry = registry
        self.store = objects
        self.admission = admission.Admission(objects)
        self.gc = gc.GarbageCollector(self)

    # -- reads -------------------------------------------------------------------------------------------

    def render(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = rt.api_version, rt.kind
        if rt.schema:
            schema.apply_defaults(out, rt.schema)  # defaulting also happens on read from storage
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.storage_key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return self.render(rt, obj)

    def list(
        self, rt: ResourceType, namespace: str | None, label_selector: str | None, field_selector: str | None
    ) -> list[dict[str, Any]]:
        by_labels = selectors.label_predicate(label_selector)
        by_fields = selectors.field_predicate(field_selector, rt.plural)
        items = self.store.list(rt.storage_key, namespace if rt.namespaced else None)
        return [self.render(rt, o) for o in items if by_labels(o) and by_fields(o)]

    # -- create ------------------------------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        opts: Options,
    ) -> dict[str, Any]:
        obj = self._decode(rt, body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            self._require_namespace(namespace)
        else:
            meta.pop("namespace", None)
        if "status" in rt.subresources:
            obj.pop("status", None)
            if not rt.crd_name:
                obj["status"] = {}  # built-in kinds always serialise their (empty) status struct
        for key in (*SYSTEM_META[:5], "resourceVersion"):
            meta.pop(key, None)
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.invalid(
                rt.kind, "", rt.group, [("metadata.name", "Required value: name or generateName is required")]
            )
        builtins.prepare(rt, obj, None)
        obj = await self._admit("CREATE", rt, obj, None, None, opts)
        meta = obj["metadata"]
        if not meta.get("name"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = meta["generateName"] + suffix
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=store.now(), generation=1)
        builtins.prepare(rt, obj, None)
        self._validate(rt, obj, opts)
        if self.store.get(rt.storage_key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(rt.plural, meta["name"], rt.group)
        if opts.dry_run:
            return self.render(rt, obj)
        stored = self.store.write(rt.storage_key, obj)
        self._after_write(rt, stored)
        self.gc.check_dangling(rt.storage_key, stored)
        return self.render(rt, stored)

    def _decode(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("kind", rt.kind) != rt.kind or obj.get("apiVersion", rt.api_version) != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match "
                f"the expected API version ({rt.api_version})"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj

    def _require_namespace(self, namespace: str) -> None:
        ns = self.store.get(gc.NAMESPACES, "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    async def _admit(
        self,
        op: str,
        rt: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        subresource: str | None,
        opts: Options,
    ) -> dict[str, Any]:
        if rt.schema:
            schema.apply_defaults(obj, rt.schema)
        req = admission.Request(
            op, rt, obj, old and self.render(rt, old), subresource, opts.dry_run, opts.warnings
        )
        mutated = await self.admission.mutate(req)
        assert mutated is not None
        if rt.schema:
            schema.apply_defaults(mutated, rt.schema)
            self._prune(rt, mutated, opts)
        req.obj = mutated
        self._validate(rt, mutated, opts)
        await self.admission.validate(req)
        return mutated

    def _prune(self, rt: ResourceType, obj: dict[str, Any], opts: Options) -> None:
        assert rt.schema is not None
        dropped = [f'unknown field "{path}"' for path in schema.prune(obj, rt.schema, root=True)]
        if dropped and opts.field_validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(dropped))
        if opts.field_validation == "Warn":
            opts.warnings.extend(dropped)

    def _validate(self, rt: ResourceType, obj: dict[str, Any], opts: Options) -> None:
        meta = obj.get("metadata") or {}
        problems = builtins.name_problems(rt, meta["name"]) if meta.get("name") else []
        problems += builtins.problems(rt, obj)
        if rt.schema:
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            root = {
                **rt.schema,
                "properties": {
                    k: v
                    for k, v in (rt.schema.get("properties") or {}).items()
                    if k not in ("apiVersion", "kind", "metadata")
                },
            }
            problems += schema.validate(body, root)
        if problems:
            raise errors.invalid(rt.kind, meta.get("name", ""), rt.group, problems)

    # -- update / patch ----------------------------------------------------------------------------------

    def _current(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        current = self.store.get(rt.storage_key, namespace if rt.namespaced else "", name)
        if current is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return current

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        subresource: str | None,
        opts: Options,
    ) -> dict[str, Any]:
        # As the API server's GuaranteedUpdate: an update without a resourceVersion that raced another write
        # (during admission) is made again on the object as it now is; with one, the race is a conflict.
        while True:
            current = self._current(rt, namespace, name)
            try:
                return await self._update_with(
                    rt, current, self._decode(rt, copy.deepcopy(body)), subresource, opts
                )
            except _Raced:
                if (body.get("metadata") or {}).get("resourceVersion"):
                    raise errors.conflict(rt.plural, name, rt.group) from None

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        content_type: str,
        subresource: str | None,
        opts: Options,
    ) -> dict[str, Any]:
        # As the API server's GuaranteedUpdate: a patch is applied to the object as it is when it is stored;
        # another write that lands while this one waits on admission makes it start again from that object.
        while True:
            current = self._current(rt, namespace, name)
            base = self.render(rt, current)
            kind = content_type.split(";")[0].strip()
            if kind == "application/json-patch+json":
                patched = patch.json_patch(base, body)
            elif kind == "application/merge-patch+json":
                patched = patch.merge_patch(base, body)
            elif kind == "application/strategic-merge-patch+json" and not rt.crd_name:
                patched = strategic.strategic_merge(base, body)
            else:
                raise errors.unsupported_media_type(kind)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch must produce an object")
            try:
                return await self._update_with(rt, current, self._decode(rt, patched), subresource, opts)
            except _Raced:
                continue

    async def _update_with(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        obj: dict[str, Any],
        subresource: str | None,
        opts: Options,
    ) -> dict[str, Any]:
        meta, cur_meta = obj.setdefault("metadata", {}), current["metadata"]
        if meta.get("name", cur_meta["name"]) != cur_meta["name"]:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on "
                f"the URL ({cur_meta['name']})"
            )
        if meta.get("resourceVersion") not in (None, "", cur_meta["resourceVersion"]):
            raise errors.conflict(rt.plural, cur_meta["name"], rt.group)
        if meta.get("uid") not in (None, "", cur_meta["uid"]):
            raise errors.conflict(
                rt.plural,
                cur_meta["name"],
                rt.group,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                f"{cur_meta['uid']}",
            )
        new = self._merge_subresource(rt, current, obj, subresource)
        builtins.prepare(rt, new, current)
        new = await self._admit("UPDATE", rt, new, current, subresource, opts)
        if self._current(rt, cur_meta.get("namespace", ""), cur_meta["name"]) is not current:
            raise _Raced  # written meanwhile: storing `new` would undo that write
        builtins.prepare(rt, new, current)
        forbidden = builtins.update_problems(rt, new, current)
        if forbidden:
            raise errors.invalid(rt.kind, cur_meta["name"], rt.group, forbidden)
        self._check_finalizers(rt, current, new)
        if self._content(rt, new) != self._content(rt, current):
            new["metadata"]["generation"] = cur_meta.get("generation", 1) + 1
        return self._commit(rt, current, new, opts)

    def _merge_subresource(
        self, rt: ResourceType, current: dict[str, Any], obj: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        if subresource == "status":
            new = copy.deepcopy(current)
            new.update(apiVersion=rt.api_version, kind=rt.kind)
            new.pop("status", None)
            if obj.get("status") is not None:
                new["status"] = obj["status"]
            return new
        new = obj
        if "status" in rt.subresources:
            new.pop("status", None)
            if current.get("status") is not None:
                new["status"] = copy.deepcopy(current["status"])
        for key in SYSTEM_META:
            new["metadata"].pop(key, None)
            if key in current["metadata"]:
                new["metadata"][key] = current["metadata"][key]
        return new

    def _check_finalizers(self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any]) -> None:
        if not current["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(
            current["metadata"].get("finalizers") or []
        )
        if added:
            raise errors.invalid(
                rt.kind,
                current["metadata"]["name"],
                rt.group,
                [
                    (
                        "metadata.finalizers",
                        f"Forbidden: no new finalizers can be added if the object is being "
                        f"deleted, found new finalizers {sorted(added)}",
                    )
                ],
            )

    def _content(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        skip = {"metadata", "apiVersion", "kind"} | ({"status"} if "status" in rt.subresources else set())
        return {k: v for k, v in obj.items() if k not in skip}

    def _commit(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        opts: Options,
    ) -> dict[str, Any]:
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        unchanged = {k: v for k, v in current.items() if k not in ("apiVersion", "kind")}
        if {k: v for k, v in new.items() if k not in ("apiVersion", "kind")} == unchanged or opts.dry_run:
            return self.render(rt, new)
        stored = self.store.write(rt.storage_key, new)
        self._after_write(rt, stored)
        return self.render(rt, stored)

    def _after_write(self, rt: ResourceType, stored: dict[str, Any]) -> None:
        meta = stored["metadata"]
        if rt.storage_key == gc.CRDS and not meta.get("deletionTimestamp"):
            self.registry.register_crd(stored)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if rt.storage_key == gc.NAMESPACES:
                self.gc.finish_namespace(meta["name"])
            else:
                self.remove_now(rt.storage_key, stored)
