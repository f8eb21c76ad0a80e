"""Server-side printing: the meta.k8s.io/v1 Table that plain `kubectl get` asks for.

Columns are Name, the CRD's additionalPrinterColumns (a JSONPath subset: `.a.b`, `[N]`,
`[?(@.key=="value")]`) and Age. Rows carry PartialObjectMetadata unless includeObject says otherwise.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from .resources import ResourceType

_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate a simple JSONPath like `.status.conditions[?(@.type=="Ready")].status`; None if absent."""
    value = obj
    for name, index, key, expected in _STEP.findall(path.strip().lstrip("$")):
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        elif index:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            items = value if isinstance(value, list) else []
            value = next(
                (item for item in items if isinstance(item, dict) and str(item.get(key)) == expected), None
            )
        if value is None:
            return None
    return value


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(
    rt: ResourceType,
    items: list[dict[str, Any]],
    include: str,
    list_meta: dict[str, Any],
) -> dict[str, Any]:
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    columns += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in rt.printer_columns
        if c["jsonPath"] != ".metadata.creationTimestamp"
    ]
    columns.append({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0})
    rows = []
    for obj in items:
        cells = [obj["metadata"]["name"]]
        cells += [
            _cell(jsonpath(obj, c["jsonPath"]))
            for c in rt.printer_columns
            if c["jsonPath"] != ".metadata.creationTimestamp"
        ]
        cells.append(_age(obj["metadata"].get("creationTimestamp")))
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }


def _cell(value: Any) -> Any:
    return "<none>" if value is None else value
