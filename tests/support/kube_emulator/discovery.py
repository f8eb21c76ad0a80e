"""Discovery and OpenAPI documents: /api, /apis, /apis/<group>[/<version>], /version and /openapi/v3.

Discovery is legacy (unaggregated) JSON; clients asking for the aggregated v2 format fall back to it.
The OpenAPI v3 documents are minimal on purpose: per group-version, one PATCH operation per resource kind
with `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter. That is what
`kubectl apply --validate=strict` (the default) checks to decide that the server validates fields itself,
so kubectl sends `fieldValidation=Strict` and the emulator rejects unknown fields (as a real server does).
Full schemas are not published (no `kubectl explain`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .resources import Registry

VERSION_INFO = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-kube-emulator",
    "gitCommit": "emulator",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": "33",
}


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(name, versions) for name, versions in sorted(registry.groups().items()) if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    return _group(name, versions) if versions and name else None


def resource_list(registry: Registry, group_name: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group_name, version)
    if not types:
        return None
    resources = [entry for rt in sorted(types, key=lambda t: t.plural) for entry in rt.discovery_entries()]
    group_version = f"{group_name}/{version}" if group_name else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _gv_path(group_name: str, version: str) -> str:
    return f"apis/{group_name}/{version}" if group_name else f"api/{version}"


def openapi_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group_name, versions in registry.groups().items():
        for version in versions:
            path = _gv_path(group_name, version)
            digest = hashlib.sha256(repr(openapi_group_version(registry, group_name, version)).encode())
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.hexdigest()[:32].upper()}"}
    return {"paths": paths}


_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "uniqueItems": True,
    "schema": {"type": "string"},
    "description": "fieldValidation instructs the server on how to handle objects in the request containing "
    "unknown or duplicate fields: Ignore, Warn or Strict.",
}


def openapi_group_version(registry: Registry, group_name: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in registry.in_version(group_name, version):
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        operation = {
            "operationId": f"patch{rt.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_FIELD_VALIDATION],
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"/{_gv_path(group_name, version)}{scope}/{rt.plural}/{{name}}"] = {
            "patch": operation,
            "put": {**operation, "operationId": f"replace{rt.kind}", "x-kubernetes-action": "put"},
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
