"""The committed CRD (crds/otlppipelines.yaml) is one the API server accepts and `kubectl` presents well:
structural schema, descriptions for `kubectl explain`, subresources, printer columns, and defaults that
agree with the models."""

from __future__ import annotations

import importlib.metadata
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from otlp_agent.api import spec, units

REPO = pathlib.Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "otlppipelines.yaml").read_text(encoding="utf-8"))
[VERSION] = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (the root, properties, items, map values) with a readable path."""
    yield path or "<root>", node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


def properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for node_path, child in schema_nodes(node, path):
        if node_path != path and not node_path.endswith(("[]", "{}")):
            yield node_path, child


def test_it_is_an_apiextensions_v1_crd_for_the_fixed_names() -> None:
    assert (CRD["apiVersion"], CRD["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert CRD["metadata"]["name"] == "otlppipelines.telemetry.otlp-operator.io"
    assert CRD["spec"]["group"] == "telemetry.otlp-operator.io"
    assert CRD["spec"]["scope"] == "Namespaced"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "OTLPPipeline",
        "otlppipelines",
        ["otlpp"],
    )
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == ("v1alpha1", True, True)


def test_every_schema_node_has_a_type_or_a_kubernetes_escape() -> None:
    untyped = [
        path
        for path, node in schema_nodes(SCHEMA)
        if "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


def test_int_or_string_nodes_have_no_type() -> None:
    typed = [p for p, n in schema_nodes(SCHEMA) if n.get("x-kubernetes-int-or-string") and "type" in n]
    assert typed == []


def test_the_schema_uses_nothing_a_structural_schema_forbids() -> None:
    forbidden = []
    for path, node in schema_nodes(SCHEMA):
        if "$ref" in node or "$defs" in node or node.get("additionalProperties") is False:
            forbidden.append(path)
        if any(option.get("type") == "null" for option in node.get("anyOf", [])):
            forbidden.append(path)
        if node.get("type") == "null" or node.get("nullable") is not None:
            forbidden.append(path)
        if isinstance(node.get("additionalProperties"), dict) and "properties" in node:
            forbidden.append(path)
    assert forbidden == []


@pytest.mark.parametrize("root", ["spec", "status"])
def test_every_property_has_a_description_for_kubectl_explain(root: str) -> None:
    undocumented = [
        p for p, node in properties(SCHEMA["properties"][root], root) if not node.get("description")
    ]
    assert undocumented == []


def test_status_and_scale_subresources_are_served() -> None:
    assert VERSION["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_the_scale_paths_exist_in_the_schema() -> None:
    status = SCHEMA["properties"]["status"]["properties"]
    assert SPEC["properties"]["replicas"]["type"] == "integer"
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"


def test_kubectl_get_shows_mode_version_ready_agents_status_endpoint_and_age() -> None:
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in VERSION["additionalPrinterColumns"]}
    assert list(columns) == ["Mode", "Version", "Ready", "Status", "Endpoint", "Age"]
    assert columns["Mode"] == ("string", ".spec.mode")
    assert columns["Version"] == ("string", ".status.agentVersion")
    assert columns["Ready"] == ("string", ".status.readyAgents")
    assert columns["Status"] == ("string", '.status.conditions[?(@.type=="Ready")].reason')
    assert columns["Age"] == ("date", ".metadata.creationTimestamp")
    status = SCHEMA["properties"]["status"]["properties"]
    assert {status["agentVersion"]["type"], status["readyAgents"]["type"]} == {"string"}


def test_the_crd_carries_the_recommended_labels_with_the_release() -> None:
    labels = CRD["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == importlib.metadata.version("otlp-operator")
    assert labels["app.kubernetes.io/name"] == "otlp-operator"


def test_status_keeps_fields_it_does_not_declare() -> None:
    assert SCHEMA["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_spec_is_required_and_exporters_within_it() -> None:
    assert SCHEMA["required"] == ["spec"]
    assert "exporters" in SPEC["required"]


def prop(path: str) -> dict[str, Any]:
    node = SPEC
    for name in path.split("."):
        node = node["items"] if name == "[]" else node["properties"][name]
    return node


@pytest.mark.parametrize(
    ("path", "model_default", "parse"),
    [
        ("processors.batch.maxItems", spec.BatchSettings().max_items, int),
        ("processors.batch.maxBytes", spec.BatchSettings().max_bytes, units.parse_bytes),
        ("processors.batch.timeout", spec.BatchSettings().timeout, units.parse_duration),
        ("receivers.otlp.grpc.port", spec.GrpcReceiver().port, int),
        ("receivers.otlp.http.port", spec.HttpReceiver().port, int),
        ("receivers.otlp.grpc.maxMessageSize", spec.GrpcReceiver().max_message_size, units.parse_bytes),
        ("receivers.otlp.http.maxBodySize", spec.HttpReceiver().max_body_size, units.parse_bytes),
        ("exporters.[].compression", spec.Compression.gzip.value, str),
        ("exporters.[].retry.initialInterval", spec.Retry().initial_interval, units.parse_duration),
    ],
)
def test_crd_defaults_match_the_models(path: str, model_default: object, parse: Any) -> None:
    assert parse(prop(path)["default"]) == model_default


def test_key_defaults_are_the_documented_values() -> None:
    assert prop("processors.batch.maxItems")["default"] == 8192
    assert prop("processors.batch.maxBytes")["default"] == "4Mi"
    assert prop("processors.batch.timeout")["default"] == "200ms"
    assert (prop("receivers.otlp.grpc.port")["default"], prop("receivers.otlp.http.port")["default"]) == (
        4317,
        4318,
    )
    assert prop("receivers.otlp.grpc.maxMessageSize")["default"] == "16Mi"
    assert prop("receivers.otlp.http.maxBodySize")["default"] == "16Mi"


def test_object_defaults_spell_out_nested_defaults_so_stored_objects_show_them() -> None:
    assert prop("processors.batch")["default"] == {"maxItems": 8192, "maxBytes": "4Mi", "timeout": "200ms"}
    assert prop("receivers.otlp")["default"]["grpc"]["port"] == 4317
