"""The scale subresource (autoscaling/v1 Scale) for Deployments, StatefulSets, ReplicaSets and CRDs that
declare `subresources.scale` (specReplicasPath, statusReplicasPath, labelSelectorPath).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors, patch, tables
from .resources import ResourceType

if TYPE_CHECKING:
    from .handlers import Handlers, Target

_BUILTIN = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}


def _paths(rt: ResourceType) -> dict[str, str]:
    return rt.scale_paths or _BUILTIN


def to_scale(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    paths = _paths(rt)
    meta = {
        k: obj["metadata"][k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in obj["metadata"]
    }
    status: dict[str, Any] = {"replicas": tables.jsonpath(obj, paths["statusReplicasPath"]) or 0}
    if paths.get("labelSelectorPath"):
        selector = tables.jsonpath(obj, paths["labelSelectorPath"])
        if selector is not None:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": tables.jsonpath(obj, paths["specReplicasPath"]) or 0},
        "status": status,
    }


def _replicas_patch(path: str, replicas: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    node = body
    parts = path.lstrip(".").split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = replicas
    return body


async def handle(handlers: Handlers, request: web.Request, t: Target) -> web.Response:
    from .handlers import json_response

    api, rt, ns, name = handlers.api, t.rt, t.namespace or "", t.name or ""
    current = to_scale(rt, api.get(rt, ns, name))
    if request.method == "GET":
        return json_response(current)
    body = await handlers._body(request)
    if request.method == "PUT":
        wanted = body
    elif request.method == "PATCH" and request.content_type == "application/json-patch+json":
        wanted = patch.json_patch(current, body)
    elif request.method == "PATCH":
        wanted = patch.merge_patch(current, body)
    else:
        raise errors.method_not_allowed()
    rv = (wanted.get("metadata") or {}).get("resourceVersion")
    if rv not in (None, current["metadata"]["resourceVersion"]):
        raise errors.conflict(rt.plural, name, rt.group)
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid(
            "Scale",
            name,
            "autoscaling",
            [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
        )
    opts = handlers._options(request)
    updated = await api.patch(
        rt,
        ns,
        name,
        _replicas_patch(_paths(rt)["specReplicasPath"], replicas),
        "application/merge-patch+json",
        None,
        opts,
    )
    return json_response(to_scale(rt, updated), 200, opts.warnings)
