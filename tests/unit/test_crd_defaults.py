"""A pipeline means the same after the API server has stored it: the CRD's `default:` values, which the API
server writes into every object it stores, never change what validation says or what the operator builds.

The rules ask in a few places whether the user *wrote* a field ("regex and replacement only for redact",
"injection resources only for mode sidecar", "a pipelineRef's protocol is what the target serves unless
written"); a schema default on such a field would make it always look written. Each case below is
validated as written and as the API server stores it (defaults applied by the emulator's structural
schema code, from the committed CRD).
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml
from otlp_agent.api import loader, rules
from otlp_agent.api.problems import SpecError
from otlp_operator.manifests import agentconfig
from otlp_operator.reconcile import pipeline_refs

from tests.support import manifest_cases
from tests.support.kube_emulator import schema

REPO = pathlib.Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "otlppipelines.yaml").read_text(encoding="utf-8"))
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

EXPORTER = {"name": "out", "endpoint": "https://otlp.example.com"}

# Specs that use the fields whose presence the rules read.
PRESENCE_CASES: dict[str, dict[str, Any]] = {
    "attribute-update-without-replacement": {
        "exporters": [EXPORTER],
        "processors": {
            "attributes": {"actions": [{"key": "env", "action": "upsert", "value": "prod"}]},
            "resource": {"actions": [{"key": "team", "action": "insert", "value": "shop"}]},
        },
    },
    "attribute-redact-default-replacement": {
        "exporters": [EXPORTER],
        "processors": {"attributes": {"actions": [{"key": "email", "action": "redact", "regex": "@.*"}]}},
    },
    "gateway-as-injection-target": {
        "mode": "deployment",
        "exporters": [EXPORTER],
        "injection": {"allowed": {"namespaces": ["shop"]}},
    },
    "sidecar-injection-defaults": {"mode": "sidecar", "exporters": [EXPORTER], "injection": {}},
    "pipeline-ref-without-protocol": {
        "exporters": [{"name": "to-gateway", "pipelineRef": {"name": "gateway"}}],
    },
}


def raw_specs() -> dict[str, dict[str, Any]]:
    """Every example pipeline, every manifest scenario and the presence cases, as written."""
    specs: dict[str, dict[str, Any]] = {}
    for path in manifest_cases.EXAMPLES:
        for index, document in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if document and document.get("kind") == "OTLPPipeline":
                specs[f"{path.stem}[{index}]"] = document["spec"]
    specs.update({f"scenario {name}": body for name, body in manifest_cases.SCENARIOS.items()})
    specs.update(PRESENCE_CASES)
    return specs


def as_stored(spec_body: dict[str, Any]) -> dict[str, Any]:
    stored = copy.deepcopy(spec_body)
    schema.apply_defaults(stored, SPEC_SCHEMA)
    return stored


def verdict(spec_body: dict[str, Any]) -> Any:
    """The validated spec, or the problems validation names."""
    try:
        return rules.validate_spec(copy.deepcopy(spec_body)).model_dump(mode="json")
    except SpecError as error:
        return sorted(str(problem) for problem in error.problems)


@pytest.mark.parametrize("name", sorted(raw_specs()))
def test_validation_says_the_same_of_a_pipeline_as_written_and_as_stored(name: str) -> None:
    written = raw_specs()[name]
    assert verdict(as_stored(written)) == verdict(written)


def test_the_presence_cases_are_valid_as_stored() -> None:
    for name, written in PRESENCE_CASES.items():
        stored = as_stored(written)
        assert not isinstance(verdict(stored), list), (name, verdict(stored))


def test_a_stored_reference_without_protocol_reaches_a_target_that_serves_only_http() -> None:
    def document(name: str, spec_body: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
            "kind": "OTLPPipeline",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": spec_body,
        }

    referrer = loader.load_document(
        document("apps", as_stored(PRESENCE_CASES["pipeline-ref-without-protocol"]))
    )
    target = document(
        "gateway",
        as_stored({"exporters": [EXPORTER], "receivers": {"otlp": {"grpc": {"enabled": False}}}}),
    )
    resolution = pipeline_refs.resolve(referrer, {("team-a", "gateway"): target})
    assert not resolution.failures
    exporter = yaml.safe_load(agentconfig.render(resolution.pipeline).text)["spec"]["exporters"][0]
    assert (exporter["endpoint"], exporter["protocol"]) == (
        "http://gateway-otlp.team-a.svc:4318",
        "http/protobuf",
    )
