"""Label and field selectors: the query-string syntax (`labelSelector=`, `fieldSelector=`) and the
metav1.LabelSelector objects used by webhook namespaceSelector/objectSelector.

A selector is parsed once into a predicate over an object; an unparsable selector or an unsupported field
is a 400 BadRequest, as from a real API server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import errors

Predicate = Callable[[dict[str, Any]], bool]

_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$"
)

# Field selectors a real API server accepts beyond metadata.name / metadata.namespace, per plural.
_EXTRA_FIELDS: dict[str, set[str]] = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "regarding.uid",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
}


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses ("a in (x,y),b" -> two requirements)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def _requirement(text: str) -> Predicate:
    match = _REQUIREMENT.match(text)
    if not match:
        raise errors.bad_request(f"unable to parse requirement: {text!r}")
    key, op, value = match["key"], (match["op"] or "").strip(), match["value"]
    if match["neg"]:
        if op:
            raise errors.bad_request(f"unable to parse requirement: {text!r}")
        return lambda labels: key not in labels
    if not op:
        return lambda labels: key in labels
    if op in ("in", "notin"):
        if not value or not value.startswith("("):
            raise errors.bad_request(f"unable to parse requirement: {text!r}: expected a list of values")
        values = {v.strip() for v in value[1:-1].split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if value is None or value.startswith("("):
        raise errors.bad_request(f"unable to parse requirement: {text!r}")
    if op == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: key in labels and labels[key] == value


def parse_labels(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """A predicate over a label dict for a `labelSelector` query string ("" matches everything)."""
    requirements = [_requirement(part) for part in _split_top_level(selector or "")]
    return lambda labels: all(req(labels) for req in requirements)


def label_predicate(selector: str | None) -> Predicate:
    match = parse_labels(selector)
    return lambda obj: match(obj.get("metadata", {}).get("labels") or {})


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def field_predicate(selector: str | None, plural: str) -> Predicate:
    """A predicate for a `fieldSelector` query string; unsupported fields are rejected like the real API."""
    checks: list[Predicate] = []
    allowed = {"metadata.name", "metadata.namespace"} | _EXTRA_FIELDS.get(plural, set())
    for part in _split_top_level(selector or ""):
        match = re.fullmatch(r"\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not match:
            raise errors.bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        field, op, value = match.groups()
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        if op == "!=":
            checks.append(lambda obj, f=field, v=value: _field_value(obj, f) != v)
        else:
            checks.append(lambda obj, f=field, v=value: _field_value(obj, f) == v)
    return lambda obj: all(check(obj) for check in checks)


def label_selector_object(selector: dict[str, Any] | None) -> Callable[[dict[str, str]], bool]:
    """A predicate for a metav1.LabelSelector (matchLabels + matchExpressions); None/{} match all."""
    selector = selector or {}
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []

    def matches(labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in match_labels.items()):
            return False
        return all(_expression_holds(expr, labels) for expr in expressions)

    return matches


def _expression_holds(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    raise errors.bad_request(f'"{op}" is not a valid label selector operator')
