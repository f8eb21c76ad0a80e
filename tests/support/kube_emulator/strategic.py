"""Strategic merge patch for the built-in kinds, enough for what `kubectl apply/edit/patch` sends.

Lists of named things (containers, env, volumes, ports, ...) merge by their patch merge key as the Go
struct tags of the core API declare; other lists replace. Directives handled: `$patch: replace|delete`
(in maps and list items), `$retainKeys`, `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
Custom resources do not support strategic merge patch (415), as on a real API server.
"""

from __future__ import annotations

import copy
from typing import Any

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
    "readinessGates": "conditionType",
    "webhooks": "name",
}
# Primitive lists whose patch strategy is "merge" (set union) rather than replace.
_MERGED_PRIMITIVES = {"finalizers"}


def _merge_key(field: str, parent_field: str) -> str | None:
    if field == "ports":
        return (
            "containerPort"
            if parent_field in ("containers", "initContainers", "ephemeralContainers")
            else "port"
        )
    return _MERGE_KEYS.get(field)


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Apply a strategic merge patch ``patch`` to ``original`` (not mutated); ``field`` names the map."""
    if not isinstance(patch, dict) or not isinstance(original, dict):
        return _strip_directives(copy.deepcopy(patch))
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key, {}), value, key)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key, field)
        else:
            result[key] = copy.deepcopy(value)
    _apply_list_directives(result, patch, field)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(original: Any, patch: list[Any], field: str, parent_field: str) -> list[Any]:
    original = original if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return _strip_directives([i for i in patch if not (isinstance(i, dict) and "$patch" in i)])
    key = _merge_key(field, parent_field)
    if key and all(isinstance(item, dict) for item in patch):
        return _merge_keyed(original, patch, key, field)
    if field in _MERGED_PRIMITIVES:
        return original + [item for item in patch if item not in original]
    return _strip_directives(copy.deepcopy(patch))


def _merge_keyed(original: list[Any], patch: list[dict[str, Any]], key: str, field: str) -> list[Any]:
    result = copy.deepcopy(original)
    for item in patch:
        index = next(
            (i for i, have in enumerate(result) if isinstance(have, dict) and have.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(_strip_directives(copy.deepcopy(item)))
        else:
            result[index] = strategic_merge(result[index], item, field)
    return result


def _apply_list_directives(result: dict[str, Any], patch: dict[str, Any], parent_field: str) -> None:
    for directive, value in patch.items():
        if directive.startswith("$deleteFromPrimitiveList/"):
            field = directive.split("/", 1)[1]
            result[field] = [item for item in result.get(field, []) if item not in value]
        elif directive.startswith("$setElementOrder/"):
            field = directive.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = _ordered(result[field], value, _merge_key(field, parent_field))


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Items in the order the client listed them; items it did not list keep their place at the end."""

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    listed = sorted((i for i in items if ident(i) in wanted), key=lambda i: wanted.index(ident(i)))
    return listed + [i for i in items if ident(i) not in wanted]


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
