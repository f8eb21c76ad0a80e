"""HTTP layer: maps kube-apiserver URL paths and verbs onto :class:`ApiServer` operations.

Paths: /api/v1/... and /apis/<group>/<version>/..., optionally /namespaces/<ns>/, then
<plural>[/<name>[/<subresource>]]. Every error is a metav1.Status JSON body with the matching code;
warnings go to `Warning: 299 - "..."` headers; lists support limit/continue pagination and Table output.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import multidict
from aiohttp import web

from . import discovery, errors, scale, tables, watch
from .apiserver import ApiServer, Options
from .resources import ResourceType


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = multidict.CIMultiDict[str]()
    for warning in warnings or []:
        quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
        headers.add("Warning", f'299 - "{quoted}"')  # one RFC 7234 header per warning, like the API server
    return web.Response(
        body=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(exc: errors.ApiError) -> web.Response:
    return json_response(exc.status(), exc.code)


class Target:
    """A parsed resource path: resource type, namespace, name and subresource."""

    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None) -> None:
        self.rt, self.namespace, self.name, self.sub = rt, namespace, name, sub


class Handlers:
    def __init__(self, api: ApiServer, emulator: Any) -> None:
        self.api = api
        self.emulator = emulator

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/version", self.version),
            web.get("/healthz", self.ok),
            web.get("/readyz", self.ok),
            web.get("/livez", self.ok),
            web.get("/api", self.core),
            web.get("/apis", self.groups),
            web.get("/openapi/v3", self.openapi_root),
            web.get("/openapi/v3/{path:.*}", self.openapi_gv),
            web.route("*", "/api/{tail:.*}", self.resource),
            web.route("*", "/apis/{tail:.*}", self.resource),
        ]

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.VERSION_INFO)

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def core(self, request: web.Request) -> web.Response:
        return json_response(discovery.core_versions(f"{request.host}"))

    async def groups(self, request: web.Request) -> web.Response:
        return json_response(discovery.group_list(self.api.registry))

    async def openapi_root(self, request: web.Request) -> web.Response:
        return json_response(discovery.openapi_root(self.api.registry))

    async def openapi_gv(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].split("/")
        group, version = (
            ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2] if len(parts) > 2 else "")
        )
        if not self.api.registry.in_version(group, version):
            raise errors.not_found("openapi", request.match_info["path"])
        return json_response(discovery.openapi_group_version(self.api.registry, group, version))

    def _parse(self, tail: str, prefix: str) -> tuple[str, str, list[str]]:
        parts = [p for p in tail.split("/") if p]
        if prefix == "api":
            return "", parts[0] if parts else "", parts[1:]
        return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "", parts[2:])

    async def resource(self, request: web.Request) -> web.StreamResponse:
        prefix = request.path.split("/")[1]
        group, version, rest = self._parse(request.match_info["tail"], prefix)
        if not rest:
            return self._discovery(group, version, prefix)
        target = self._target(group, version, rest)
        if target.name is None:
            return await self._collection(request, target)
        return await self._object(request, target)

    def _discovery(self, group: str, version: str, prefix: str) -> web.Response:
        registry = self.api.registry
        if prefix == "apis" and not version:
            found = discovery.group(registry, group)
        else:
            found = discovery.resource_list(registry, group, version)
        if found is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(found)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = None
        is_ns_sub = len(rest) == 3 and rest[0] == "namespaces" and rest[2] in ("status", "finalize")
        if rest[0] == "namespaces" and len(rest) >= 3 and not is_ns_sub:
            namespace, rest = rest[1], rest[2:]
        rt = self.api.registry.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and name is not None and namespace is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rt, namespace, name, sub)

    @staticmethod
    def _options(request: web.Request) -> Options:
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f"fieldValidation must be one of Ignore, Warn or Strict, got {validation}"
            )
        return Options(dry_run=request.query.get("dryRun") == "All", field_validation=validation)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        kind = request.content_type
        if "protobuf" in kind or "yaml" in kind:  # no server-side apply (apply-patch+yaml) either
            raise errors.unsupported_media_type(kind)
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    async def _collection(self, request: web.Request, t: Target) -> web.StreamResponse:
        if request.method == "GET":
            if request.query.get("watch") in ("true", "1"):
                params = watch.WatchParams(request.query, t.rt, t.namespace)
                watcher = watch.Watcher(
                    self.api, t.rt, params, self.emulator.closing, self.emulator.bookmark_interval
                )
                return await watcher.serve(request)
            return self._list(request, t)
        if request.method == "POST":
            if t.namespace is None and t.rt.namespaced:
                raise errors.method_not_allowed()
            opts = self._options(request)
            obj = await self.api.create(t.rt, t.namespace or "", await self._body(request), opts)
            return json_response(obj, 201, opts.warnings)
        if request.method == "DELETE":
            return await self._delete_collection(request, t)
        raise errors.method_not_allowed()

    def _list(self, request: web.Request, t: Target) -> web.Response:
        items = self.api.list(
            t.rt, t.namespace, request.query.get("labelSelector"), request.query.get("fieldSelector")
        )
        meta: dict[str, Any] = {"resourceVersion": str(self.api.store.rv)}
        limit = int(request.query.get("limit") or 0)
        token = request.query.get("continue")
        if token:
            start = json.loads(base64.urlsafe_b64decode(token))
            items = [o for o in items if [o["metadata"].get("namespace", ""), o["metadata"]["name"]] > start]
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([last.get("namespace", ""), last["name"]]).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if "as=Table" in request.headers.get("Accept", ""):
            include = request.query.get("includeObject", "Metadata")
            return json_response(tables.table(t.rt, items, include, meta))
        return json_response(
            {"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version, "metadata": meta, "items": items}
        )

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        opts = self._options(request)
        options = {**(await self._body(request) or {}), **self._delete_query(request)}
        deleted = []
        for obj in self.api.list(
            t.rt, t.namespace, request.query.get("labelSelector"), request.query.get("fieldSelector")
        ):
            meta = obj["metadata"]
            deleted.append(
                await self.api.delete(t.rt, meta.get("namespace", ""), meta["name"], options, opts)
            )
        return json_response(
            {
                "kind": f"{t.rt.kind}List",
                "apiVersion": t.rt.api_version,
                "metadata": {"resourceVersion": str(self.api.store.rv)},
                "items": deleted,
            }
        )

    @staticmethod
    def _delete_query(request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if "gracePeriodSeconds" in request.query:
            options["gracePeriodSeconds"] = int(request.query["gracePeriodSeconds"])
        if request.query.get("orphanDependents") in ("true", "false"):
            options["orphanDependents"] = request.query["orphanDependents"] == "true"
        return options

    async def _object(self, request: web.Request, t: Target) -> web.Response:
        ns, name, rt = t.namespace or "", t.name or "", t.rt
        if t.sub == "scale":
            return await scale.handle(self, request, t)
        method = request.method
        if method == "GET":
            obj = self.api.get(rt, ns, name)
            if "as=Table" in request.headers.get("Accept", ""):
                include = request.query.get("includeObject", "Metadata")
                return json_response(
                    tables.table(rt, [obj], include, {"resourceVersion": str(self.api.store.rv)})
                )
            return json_response(obj)
        opts = self._options(request)
        if method == "PUT":
            obj = await self.api.update(rt, ns, name, await self._body(request), t.sub, opts)
            return json_response(obj, 200, opts.warnings)
        if method == "PATCH":
            body = await self._body(request)
            obj = await self.api.patch(rt, ns, name, body, request.content_type, t.sub, opts)
            return json_response(obj, 200, opts.warnings)
        if method == "DELETE" and t.sub is None:
            options = {**(await self._body(request) or {}), **self._delete_query(request)}
            obj = await self.api.delete(rt, ns, name, options, opts)
            # Pods come back as the object even when removed at once (the pod registry's
            # ReturnDeletedObject), as the kubernetes clients expect.
            if obj["metadata"].get("deletionTimestamp") or (rt.group, rt.plural) == ("", "pods"):
                return json_response(obj, 200, opts.warnings)
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                },
                200,
                opts.warnings,
            )
        raise errors.method_not_allowed()
