"""Structural openAPIV3Schema handling for custom resources: defaulting, pruning and validation.

The order follows the API server: `default:` values are applied, unknown fields are pruned (reported so
`fieldValidation=Strict` can reject them), then the object is validated and every violation is reported
at once as (field path, message) pairs worded like kube-openapi's errors. CEL rules
(x-kubernetes-validations) and `format` are not evaluated.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

Schema = dict[str, Any]
Problem = tuple[str, str]
_ROOT_KEEP = {"apiVersion", "kind", "metadata"}


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill absent properties that declare `default:` (recursively, including inside defaults)."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(schema.get("properties") or {}):
                apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def prune(value: Any, schema: Schema, path: str = "", root: bool = False) -> list[str]:
    """Drop fields the schema does not declare; returns the dropped field paths."""
    dropped: list[str] = []
    if isinstance(value, dict) and not schema.get("x-kubernetes-int-or-string"):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        keep = _ROOT_KEEP if root or schema.get("x-kubernetes-embedded-resource") else set()
        for key in list(value):
            if key in keep:
                continue  # apiVersion, kind and metadata belong to the API server: a schema never prunes them
            if key in props:
                dropped += prune(value[key], props[key], _child(path, key))
            elif isinstance(extra, dict):
                dropped += prune(value[key], extra, _child(path, key))
            elif not (preserve or extra is True or key in keep):
                del value[key]
                dropped.append(_child(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            dropped += prune(item, schema["items"], f"{path}[{index}]")
    return dropped


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", dict: "object", list: "array"}.get(type(value), "unknown")


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(_type_name(value))
    return json.dumps(value)


def _type_ok(value: Any, schema: Schema) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    expected = schema.get("type")
    actual = _type_name(value)
    if not expected or actual == expected:
        return True
    if expected == "number" and actual == "integer":
        return True
    return expected == "integer" and isinstance(value, float) and value.is_integer()


def validate(value: Any, schema: Schema, path: str = "") -> list[Problem]:
    """All schema violations of ``value``; an empty list means valid."""
    shown_path = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return []
        return [
            (
                path,
                f'Invalid value: "null": {shown_path} in body must be of type '
                f'{schema.get("type", "object")}: "null"',
            )
        ]
    if not _type_ok(value, schema):
        return [
            (
                path,
                f"Invalid value: {json.dumps(_type_name(value))}: {shown_path} in body must be of type "
                f"{schema.get('type')}: {json.dumps(_type_name(value))}",
            )
        ]
    problems = _scalar_checks(value, schema, path, shown_path)
    if isinstance(value, dict):
        problems += _object_checks(value, schema, path, shown_path)
    elif isinstance(value, list):
        problems += _array_checks(value, schema, path, shown_path)
    problems += _combinators(value, schema, path, shown_path)
    return problems


def _scalar_checks(value: Any, schema: Schema, path: str, shown: str) -> list[Problem]:
    problems: list[Problem] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        problems.append((path, f"Unsupported value: {_shown(value)}: supported values: {allowed}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems += _number_checks(value, schema, path, shown)
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(
                (
                    path,
                    f"Invalid value: {_shown(value)}: {shown} in body should be at least "
                    f"{schema['minLength']} chars long",
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append((path, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(
                (path, f"Invalid value: {_shown(value)}: {shown} in body should match '{schema['pattern']}'")
            )
    return problems


def _number_checks(value: float, schema: Schema, path: str, shown: str) -> list[Problem]:
    problems: list[Problem] = []
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
        if value < low or (exclusive and value == low):
            word = "greater than" if exclusive else "greater than or equal to"
            problems.append((path, f"Invalid value: {_shown(value)}: {shown} in body should be {word} {low}"))
    if "maximum" in schema:
        high, exclusive = schema["maximum"], schema.get("exclusiveMaximum", False)
        if value > high or (exclusive and value == high):
            word = "less than" if exclusive else "less than or equal to"
            problems.append(
                (path, f"Invalid value: {_shown(value)}: {shown} in body should be {word} {high}")
            )
    return problems


def _object_checks(value: dict[str, Any], schema: Schema, path: str, shown: str) -> list[Problem]:
    problems: list[Problem] = []
    for key in schema.get("required") or []:
        if key not in value:
            problems.append((_child(path, key), "Required value"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            problems += validate(item, props[key], _child(path, key))
        elif isinstance(extra, dict):
            problems += validate(item, extra, _child(path, key))
        elif extra is False and not schema.get("x-kubernetes-preserve-unknown-fields") and path:
            problems.append(
                (_child(path, key), f"Invalid value: {_shown(item)}: field not declared in schema")
            )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        problems.append(
            (
                path,
                f"Invalid value: {len(value)}: {shown} in body should have at least "
                f"{schema['minProperties']} properties",
            )
        )
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        problems.append((path, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"))
    return problems


def _array_checks(value: list[Any], schema: Schema, path: str, shown: str) -> list[Problem]:
    problems: list[Problem] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        problems.append(
            (
                path,
                f"Invalid value: {len(value)}: {shown} in body should have at least "
                f"{schema['minItems']} items",
            )
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append((path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
    if schema.get("uniqueItems"):
        for index, item in enumerate(value):
            if item in value[:index]:
                problems.append((f"{path}[{index}]", f"Duplicate value: {_shown(item)}"))
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{index}]")
    return problems


def _combinators(value: Any, schema: Schema, path: str, shown: str) -> list[Problem]:
    problems: list[Problem] = []
    for sub in schema.get("allOf") or []:
        problems += validate(value, sub, path)
    if "anyOf" in schema and not any(not validate(value, sub, path) for sub in schema["anyOf"]):
        problems.append(
            (
                path,
                f"Invalid value: {_shown(value)}: {shown} in body must validate at least one schema (anyOf)",
            )
        )
    if "oneOf" in schema and sum(not validate(value, sub, path) for sub in schema["oneOf"]) != 1:
        problems.append(
            (
                path,
                f"Invalid value: {_shown(value)}: {shown} in body must validate one and only "
                "one schema (oneOf)",
            )
        )
    if "not" in schema and not validate(value, schema["not"], path):
        problems.append(
            (path, f"Invalid value: {_shown(value)}: {shown} in body must not validate the schema (not)")
        )
    return problems


def check_structural(schema: Schema, path: str = "spec.versions[0].schema.openAPIV3Schema") -> list[Problem]:
    """The few structural-schema rules the emulator enforces on CRD creation: every node has a type."""
    problems: list[Problem] = []
    if not isinstance(schema, dict):
        return [(path, "Required value: must be an object")]
    special = schema.get("x-kubernetes-int-or-string") or schema.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in schema and not special:
        problems.append((f"{path}.type", "Required value: must not be empty for specified object fields"))
    for key, sub in (schema.get("properties") or {}).items():
        problems += check_structural(sub, f"{path}.properties[{key}]")
    if isinstance(schema.get("items"), dict):
        problems += check_structural(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += check_structural(schema["additionalProperties"], f"{path}.additionalProperties")
    return problems
