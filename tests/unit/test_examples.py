"""Every example in examples/ is accepted by both gatekeepers a user meets: the API server (the CRD's
openAPIV3Schema, checked here with jsonschema) and the agent's own validation (the models and rules)."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import jsonschema
import pytest
import yaml
from otlp_agent import config

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CRD = yaml.safe_load((REPO / "crds" / "otlppipelines.yaml").read_text(encoding="utf-8"))


def as_json_schema(node: Any) -> Any:
    """The OpenAPI schema as plain JSON Schema: int-or-string becomes anyOf integer/string."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: as_json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


SCHEMA = as_json_schema(CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def load(path: pathlib.Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_crd_schema_is_itself_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_there_are_examples_for_every_mode() -> None:
    modes = {load(path)["spec"].get("mode", "deployment") for path in EXAMPLES}
    assert modes == {"deployment", "daemonset", "sidecar"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_passes_the_crd_schema(path: pathlib.Path) -> None:
    assert schema_errors(load(path)) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.update(replicas="two"), "$.spec.replicas"),
        (lambda s: s.update(mode="gateway"), "$.spec.mode"),
        (lambda s: s["exporters"][0].update(protocol="thrift"), "$.spec.exporters[0].protocol"),
        (lambda s: s.update(exporters=[]), "$.spec.exporters"),
        (lambda s: s.update(processors={"batch": {"timeout": "soon"}}), "$.spec.processors.batch.timeout"),
        (lambda s: s.update(processors={"batch": {"maxBytes": 1.5}}), "$.spec.processors.batch.maxBytes"),
    ],
    ids=["replicas", "mode", "protocol", "no-exporters", "timeout", "max-bytes"],
)
def test_the_schema_check_catches_broken_manifests(change: Any, where: str) -> None:
    document = copy.deepcopy(load(REPO / "examples" / "gateway.yaml"))
    change(document["spec"])
    assert [error.split(":")[0] for error in schema_errors(document)] == [where]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_passes_the_agents_validation(path: pathlib.Path) -> None:
    pipeline = config.load_file(path)
    assert pipeline.name == load(path)["metadata"]["name"]


def test_the_routing_example_routes_payments_to_its_own_exporter() -> None:
    routes = config.load_file(REPO / "examples" / "routes-persistent.yaml").spec.routes
    assert routes is not None
    assert [(rule.name, rule.exporters) for rule in routes.rules] == [("payments", ["payments"])]
    assert routes.default == ["shared"]
