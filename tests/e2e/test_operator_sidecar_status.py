"""A sidecar pipeline whose pipelineRef is refused: its status speaks of sidecars, never of a workload.

A sidecar pipeline has no Deployment or DaemonSet; while its only reference is refused nothing was ever
published, so the status must not promise "the last good config" nor wait for "the agent workload".
"""

from __future__ import annotations

from typing import Any

from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
)

REFUSED: dict[str, Any] = {
    "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
    "kind": "OTLPPipeline",
    "metadata": {"name": "sidecar-ref", "namespace": NAMESPACE},
    "spec": {"mode": "sidecar", "exporters": [{"name": "up", "pipelineRef": {"name": "no-such-gateway"}}]},
}


def messages(cluster: Cluster, name: str) -> dict[str, tuple[str, str, str]]:
    found = cluster.status(name).get("conditions") or []
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in found}


def test_a_refused_reference_of_a_never_published_sidecar_pipeline_reports_sidecar_truths(
    cluster: Cluster,
) -> None:
    with operator_running(config_for_tests()):
        apply_yaml(cluster, REFUSED)
        conditions = cluster.wait_for(
            lambda: (found := messages(cluster, "sidecar-ref")).get("ReferencesResolved") and found,
            what="the status of the sidecar pipeline",
        )
    assert conditions["ReferencesResolved"][:2] == ("False", "TargetNotFound")
    assert conditions["Ready"][:2] == ("False", "NotPublished")
    assert conditions["Progressing"][:2] == ("False", "NotPublished")
    assert conditions["Degraded"][:2] == ("True", "ReferenceUnresolved")
    text = " ".join(message for _, _, message in conditions.values())
    for untrue in ("workload", "last good config", "creating"):
        assert untrue not in text, (untrue, conditions)
    assert "nothing is deployed" in conditions["Degraded"][2]
