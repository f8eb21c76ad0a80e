"""Applying a pipeline's children idempotently, and deleting the ones it no longer wants.

Per child: GET; create when missing; else compute the three-way merge patch (`merge.patch_for`) and
PATCH only when it is not empty. A child controlled by another owner is never taken over (that is a
`Conflict`); one without a controller is adopted. An immutable ConfigMap whose data differs (someone
deleted and re-created it by hand, or an operator that made immutable ones) is replaced, since it cannot
be patched. A StatefulSet whose fields the API server refuses to change (`statefulset.IMMUTABLE`: its
claim templates, when a queue's size or class changed) is deleted with its pods and claims orphaned, and
created again: the new one adopts them (same names, same selector), existing claims keep their size, new
replicas get the new one.

Stale children are found by the pipeline label and pruned only when this pipeline is their controller:
a workload of the previous mode, an autoscaler or disruption budget no longer wanted, and old
hash-named ConfigMaps — those only once the rollout to the new config has finished, so pods still
starting with the old config can mount it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_operator.manifests import statefulset
from otlp_operator.reconcile import kube, merge


class Conflict(Exception):
    """A child's name is taken by an object another controller owns."""


@dataclasses.dataclass
class Applied:
    """The children as they are live after applying, and what was changed (for the Event)."""

    live: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    changes: list[str] = dataclasses.field(default_factory=list)


async def apply_all(client: kube.Kube, desired: list[dict[str, Any]], owner_uid: str, into: Applied) -> None:
    """Apply every desired child in order into `into`; raises kube.ApiError or Conflict on the first
    failure (`into` then holds the children applied before it)."""
    for obj in desired:
        into.live.append(await _apply_one(client, obj, owner_uid, into.changes))


async def _apply_one(client: kube.Kube, desired: dict[str, Any], owner_uid: str, changes: list[str]) -> Any:
    kind, namespace, name = desired["kind"], desired["metadata"]["namespace"], desired["metadata"]["name"]
    live = await client.get(kind, namespace, name)
    if live is None:
        changes.append(f"created {kind} {name}")
        return await client.create(merge.with_last_applied(desired))
    foreign = merge.foreign_controller(live, owner_uid)
    if foreign is not None:
        raise Conflict(f"{kind} {name} already exists and is controlled by {foreign}")
    patch = merge.patch_for(desired, live)
    if not patch:
        return live
    if _immutable_data_differs(desired, live):
        await client.delete(kind, namespace, name)
        changes.append(f"replaced {kind} {name}")
        return await client.create(merge.with_last_applied(desired))
    if _immutable_spec_differs(desired, live):
        await client.delete(kind, namespace, name, orphan=True)
        changes.append(f"replaced {kind} {name} (its pods and claims kept)")
        return await client.create(merge.with_last_applied(desired))
    changes.append(f"{'updated' if merge.controller_uid(live) else 'adopted'} {kind} {name}")
    return await client.patch(kind, namespace, name, patch)


def _immutable_data_differs(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    return bool(live.get("immutable")) and any(
        desired.get(field) != live.get(field) for field in ("data", "binaryData")
    )


def _immutable_spec_differs(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    if desired["kind"] != "StatefulSet":
        return False
    wanted, found = desired.get("spec") or {}, live.get("spec") or {}
    return any(
        field in wanted and not merge.subset(wanted[field], found.get(field))
        for field in statefulset.IMMUTABLE
    )


async def prune(
    client: kube.Kube,
    namespace: str,
    selector: str,
    owner_uid: str,
    desired: list[dict[str, Any]],
    *,
    keep_old_configs: bool,
) -> list[str]:
    """Delete children this pipeline controls that are not desired; returns what was deleted."""
    wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in desired}
    deleted = []
    for kind in kube.CHILD_KINDS:
        if kind == "ConfigMap" and keep_old_configs:
            continue
        for obj in await client.list(kind, namespace, selector):
            name = obj["metadata"]["name"]
            if (kind, name) in wanted or merge.controller_uid(obj) != owner_uid:
                continue
            await client.delete(kind, namespace, name)
            deleted.append(f"deleted {kind} {name}")
    return deleted


async def find_workload(client: kube.Kube, namespace: str, selector: str, owner_uid: str) -> Any:
    """The Deployment, StatefulSet or DaemonSet this pipeline controls, or None (used while the spec is
    invalid)."""
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        for obj in await client.list(kind, namespace, selector):
            if merge.controller_uid(obj) == owner_uid:
                return {**obj, "kind": kind}  # list items carry no kind
    return None
