"""The status of a pipeline with pipelineRefs: the ReferencesResolved condition, `status.references`, and
the last good config kept while a reference does not resolve."""

from __future__ import annotations

from typing import Any

from otlp_operator.reconcile import status

T0 = "2026-01-01T00:00:00Z"
REFERENCE = {
    "exporter": "to-gateway",
    "pipeline": "team-a/gateway",
    "endpoint": "gateway-otlp.team-a.svc:4317",
    "protocol": "grpc",
    "tls": False,
}


def by_type(found: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in found["conditions"]}


def test_resolved_references_are_listed_and_the_condition_is_true() -> None:
    obs = status.Observation(3, sidecar=True, config_hash="abc", references=[REFERENCE])
    found, _ = status.compute(obs, {}, T0)
    assert found["references"] == [REFERENCE]
    assert by_type(found)["ReferencesResolved"] == ("True", "Resolved")


def test_an_unresolved_reference_says_why_and_keeps_the_last_good_config() -> None:
    previous = {"configHash": "good", "references": [REFERENCE], "endpoints": {"grpc": "x:4317"}}
    failure = status.ReferenceFailure("NotAllowed", "exporter to-gateway -> team-a/gateway: not allowed")
    obs = status.Observation(4, reference_failures=(failure,), config_hash="good")
    found, transitions = status.compute(obs, previous, T0)
    conditions = by_type(found)
    assert conditions["ReferencesResolved"] == ("False", "NotAllowed")
    assert conditions["Degraded"] == ("True", "ReferenceUnresolved")
    assert conditions["ConfigValid"] == ("True", "Valid")
    message = {c["type"]: c["message"] for c in found["conditions"]}
    assert "exporter to-gateway -> team-a/gateway: not allowed" in message["ReferencesResolved"]
    assert "last good config (good)" in message["Degraded"]
    assert (found["configHash"], found["references"], found["endpoints"]) == (
        "good",
        [REFERENCE],
        {"grpc": "x:4317"},
    )
    assert any(t.warning and t.condition.type == "Degraded" for t in transitions)


def test_dropping_every_reference_removes_the_field() -> None:
    obs = status.Observation(5, sidecar=True, config_hash="abc", references=[])
    found, _ = status.compute(obs, {"references": [REFERENCE]}, T0)
    assert "references" not in found
    assert by_type(found)["ReferencesResolved"] == ("True", "NoReferences")
