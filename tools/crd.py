"""The OTLPPipeline CustomResourceDefinition, derived from `otlp_agent.api.spec` (never written by hand).

Pydantic's JSON schema is turned into a Kubernetes *structural* schema: references inlined, `anyOf` with
null collapsed (the API server prunes nulls), titles dropped, object defaults made explicit so the stored
object shows every default (`kubectl get -o yaml`), and descriptions kept so `kubectl explain` works.
Fields marked `spec.PRESENCE_MATTERS` get no default: the API server would store it, and the rules that ask
whether the user wrote the field would then always find it written.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, cast

import pydantic
import pydantic.json_schema
from otlp_agent.api import spec
from pydantic_core import core_schema

# pydantic writes a field's numeric bounds as ge/le/gt/lt when its type renders as a string (an optional
# duration): not OpenAPI, and the API server refuses them. Such bounds are checked by the loader and the
# webhook, and stated in the field's description.
_DROP_KEYS = {"title", "additionalProperties", "$defs", "ge", "le", "gt", "lt"}

(_PRESENCE_KEY,) = spec.PRESENCE_MATTERS


class _SchemaWithFactoryDefaults(pydantic.json_schema.GenerateJsonSchema):
    """Emits the value of `default_factory` fields as their default, so the CRD defaults them too."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> pydantic.json_schema.JsonSchemaValue:
        factory: Any = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            with_value = {key: value for key, value in schema.items() if key != "default_factory"}
            with_value["default"] = factory()
            schema = cast(core_schema.WithDefaultSchema, with_value)
        return super().default_schema(schema)


def openapi_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """A structural openAPIV3Schema for `model`, with camelCase names."""
    raw = model.model_json_schema(
        by_alias=True, mode="serialization", schema_generator=_SchemaWithFactoryDefaults
    )
    structural: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return structural


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = _inline_ref(node, defs)
    node = _collapse_nullable(node, defs)
    if node.get(_PRESENCE_KEY):
        node = {key: value for key, value in node.items() if key not in (_PRESENCE_KEY, "default")}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key in ("properties",):
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "default":
            if value is not None:
                out[key] = _without_nulls(value)
        else:
            out[key] = _structural(value, defs)
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _without_nulls(value: Any) -> Any:
    """Defaults must validate against the schema, where null is never allowed."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _inline_ref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    rest = {k: v for k, v in node.items() if k != "$ref"}
    return {**target, **rest}


def _collapse_nullable(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    options = node.get("anyOf")
    if not options:
        return node
    non_null = [option for option in options if option.get("type") != "null"]
    if len(non_null) != 1:
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**_inline_ref(non_null[0], defs), **rest}


def build_crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition object."""
    spec_schema = openapi_schema(spec.OTLPPipelineSpec)
    status_schema = openapi_schema(spec.OTLPPipelineStatus)
    status_schema["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{spec.PLURAL}.{spec.API_GROUP}",
            "labels": _labels(),
        },
        "spec": {
            "group": spec.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": spec.KIND,
                "listKind": f"{spec.KIND}List",
                "plural": spec.PLURAL,
                "singular": spec.KIND.lower(),
                "shortNames": [spec.SHORT_NAME],
                "categories": ["otlp", "telemetry"],
            },
            "versions": [
                {
                    "name": spec.API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An OTLP pipeline: agents that receive, batch and export.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }


def _labels() -> dict[str, str]:
    """The recommended labels, with this release's version."""
    return {
        "app.kubernetes.io/component": "crd",
        "app.kubernetes.io/name": "otlp-operator",
        "app.kubernetes.io/part-of": "otlp-operator",
        "app.kubernetes.io/version": importlib.metadata.version("otlp-operator"),
    }


def _printer_columns() -> list[dict[str, Any]]:
    """`kubectl get otlpp`: MODE, VERSION (of the agent image), READY ("2/3" agents), STATUS (the Ready
    condition's reason), ENDPOINT, AGE."""
    ready_reason = '.status.conditions[?(@.type=="Ready")].reason'
    return [
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Version", "type": "string", "jsonPath": ".status.agentVersion"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.readyAgents"},
        {"name": "Status", "type": "string", "jsonPath": ready_reason},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoints.grpc"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
