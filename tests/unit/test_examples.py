"""Every example in examples/ is accepted by both gatekeepers a user meets: the API server (the CRD's
openAPIV3Schema, checked here with jsonschema) and the agent's own validation (the models and rules).
A file may hold several pipelines (`---`-separated, as `kubectl apply -f` takes them): each is checked."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import jsonschema
import pytest
import yaml
from otlp_agent.api import loader

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


def documents(path: pathlib.Path) -> list[dict[str, Any]]:
    found = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert found and all(isinstance(d, dict) for d in found), path.name
    return found


def load(path: pathlib.Path) -> dict[str, Any]:
    (document,) = documents(path)
    return document


# Every pipeline of every example file: (file, index in the file, document).
DOCUMENTS = [(path, i, doc) for path in EXAMPLES for i, doc in enumerate(documents(path))]
DOCUMENT_IDS = [f"{path.name}#{i}" for path, i, _ in DOCUMENTS]


def schema_errors(document: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_crd_schema_is_itself_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_there_are_examples_for_every_mode() -> None:
    modes = {document["spec"].get("mode", "deployment") for _, _, document in DOCUMENTS}
    assert modes == {"deployment", "statefulset", "daemonset", "sidecar"}


def test_a_multi_document_example_is_checked_document_by_document() -> None:
    # Guards the loader: a file read as one document would leave all but its first pipeline unchecked.
    names = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for p, _, d in DOCUMENTS
        if p.name == "two-teams.yaml"
    }
    assert len(names) == 6 and ("team-b", "apps") in names


@pytest.mark.parametrize(("path", "index", "document"), DOCUMENTS, ids=DOCUMENT_IDS)
def test_every_example_passes_the_crd_schema(
    path: pathlib.Path, index: int, document: dict[str, Any]
) -> None:
    assert schema_errors(document) == []


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


@pytest.mark.parametrize(
    ("path", "index", "document"),
    DOCUMENTS,
    ids=DOCUMENT_IDS,
)
def test_every_example_passes_the_agents_validation(
    path: pathlib.Path, index: int, document: dict[str, Any]
) -> None:
    pipeline = loader.load_document(document, source=f"{path.name}#{index}")
    assert pipeline.name == document["metadata"]["name"]


def test_the_routing_example_routes_payments_to_its_own_exporter() -> None:
    routes = loader.load_file(REPO / "examples" / "routes-persistent.yaml").spec.routes
    assert routes is not None
    assert [(rule.name, rule.exporters) for rule in routes.rules] == [("payments", ["payments"])]
    assert routes.default == ["shared"]
