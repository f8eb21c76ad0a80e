"""pipelineRef resolution: what endpoint the agent gets for a target, why a reference fails, the tenancy
guard, and which target changes reconcile a referrer."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from otlp_agent.api import loader
from otlp_operator.manifests import agentconfig
from otlp_operator.reconcile import pipeline_refs


def manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("exporters", [{"name": "out", "endpoint": "https://otlp.example.com"}])
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def referrer(namespace: str = "team-a", **ref_fields: Any) -> loader.OTLPPipeline:
    exporter = {"name": "to-gateway", "pipelineRef": {"name": "gateway"}, **ref_fields}
    return loader.load_document(manifest("apps", namespace, exporters=[exporter]))


GATEWAY = manifest("gateway", "team-a")


def resolve_against(pipeline: loader.OTLPPipeline, *bodies: dict[str, Any]) -> pipeline_refs.Resolution:
    found = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in bodies}
    return pipeline_refs.resolve(pipeline, {key: found.get(key) for key in pipeline_refs.targets(pipeline)})


def rendered_exporter(resolution: pipeline_refs.Resolution) -> dict[str, Any]:
    """The exporter as the agent reads it from the ConfigMap (re-validated by the agent's own loader)."""
    text = agentconfig.render(resolution.pipeline).text
    loader.load_text(text)
    exporter: dict[str, Any] = yaml.safe_load(text)["spec"]["exporters"][0]
    return exporter


def test_a_reference_becomes_the_targets_grpc_service_in_plaintext() -> None:
    resolution = resolve_against(referrer(), GATEWAY)
    exporter = rendered_exporter(resolution)
    assert "pipelineRef" not in exporter
    assert exporter["endpoint"] == "gateway-otlp.team-a.svc:4317"
    assert (exporter["protocol"], exporter["tls"]["insecure"]) == ("grpc", True)
    assert [r.status() for r in resolution.references] == [
        {
            "exporter": "to-gateway",
            "pipeline": "team-a/gateway",
            "endpoint": "gateway-otlp.team-a.svc:4317",
            "protocol": "grpc",
            "tls": False,
        }
    ]


def test_a_target_without_grpc_is_reached_over_http_on_its_port() -> None:
    target = manifest(
        "gateway", "team-a", receivers={"otlp": {"grpc": {"enabled": False}, "http": {"port": 8080}}}
    )
    exporter = rendered_exporter(resolve_against(referrer(), target))
    assert (exporter["endpoint"], exporter["protocol"]) == (
        "http://gateway-otlp.team-a.svc:8080",
        "http/protobuf",
    )


def test_an_explicit_protocol_is_kept_when_the_target_serves_it() -> None:
    exporter = rendered_exporter(
        resolve_against(referrer(protocol="http/protobuf", compression="zstd"), GATEWAY)
    )
    assert (exporter["endpoint"], exporter["compression"]) == ("http://gateway-otlp.team-a.svc:4318", "zstd")


def test_an_explicit_protocol_the_target_does_not_serve_fails() -> None:
    target = manifest("gateway", "team-a", receivers={"otlp": {"http": {"enabled": False}}})
    (failure,) = resolve_against(referrer(protocol="http/json"), target).failures
    assert failure.reason == "ProtocolNotServed"
    assert "does not serve http/json" in str(failure)


def test_a_target_serving_tls_gets_an_https_endpoint_and_keeps_the_exporters_tls() -> None:
    tls = {"certSecret": "gateway-tls"}
    target = manifest("gateway", "team-a", receivers={"otlp": {"grpc": {"tls": tls}}})
    resolution = resolve_against(referrer(tls={"caSecret": {"name": "ca", "key": "ca.crt"}}), target)
    exporter = rendered_exporter(resolution)
    assert exporter["endpoint"] == "https://gateway-otlp.team-a.svc:4317"
    assert exporter["tls"]["insecure"] is False and exporter["tls"]["caSecret"]["name"] == "ca"
    assert resolution.references[0].tls is True


def test_the_resolved_pipeline_keeps_its_other_exporters_untouched() -> None:
    pipeline = loader.load_document(
        manifest(
            "apps",
            "team-a",
            exporters=[
                {"name": "direct", "endpoint": "https://x.example.com", "protocol": "http/protobuf"},
                {"name": "ref", "pipelineRef": {"name": "gateway"}},
            ],
        )
    )
    resolution = resolve_against(pipeline, GATEWAY)
    direct, ref = resolution.pipeline.spec.exporters
    assert direct == pipeline.spec.exporters[0]
    assert ref.endpoint == "gateway-otlp.team-a.svc:4317" and ref.pipeline_ref is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (None, "TargetNotFound"),
        (
            {**GATEWAY, "metadata": {**GATEWAY["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}},
            "TargetNotFound",
        ),
        (manifest("gateway", "team-a", mode="sidecar"), "TargetHasNoService"),
        (manifest("gateway", "team-a", replicas="many"), "TargetInvalid"),
    ],
    ids=["missing", "being-deleted", "sidecar", "invalid"],
)
def test_a_reference_that_cannot_resolve_says_why(target: dict[str, Any] | None, reason: str) -> None:
    pipeline = referrer()
    resolution = pipeline_refs.resolve(pipeline, {("team-a", "gateway"): target})
    assert [f.reason for f in resolution.failures] == [reason]
    assert "exporter to-gateway -> team-a/gateway" in str(resolution.failures[0])
    assert resolution.references == []


def test_a_pipeline_cannot_reference_itself() -> None:
    pipeline = loader.load_document(
        manifest("apps", "team-a", exporters=[{"name": "loop", "pipelineRef": {"name": "apps"}}])
    )
    (failure,) = resolve_against(pipeline, manifest("apps", "team-a")).failures
    assert failure.reason == "SelfReference"


def test_another_namespace_is_refused_unless_the_target_allows_it() -> None:
    other = referrer(namespace="team-b", pipelineRef={"name": "gateway", "namespace": "team-a"})
    (failure,) = resolve_against(other, GATEWAY).failures
    assert failure.reason == "NotAllowed"
    assert "does not list namespace team-b in spec.allowedReferrerNamespaces" in failure.message
    allowing = manifest("gateway", "team-a", allowedReferrerNamespaces=["team-c", "team-b"])
    assert [r.target for r in resolve_against(other, allowing).references] == ["team-a/gateway"]


def test_the_tenancy_guard_is_checked_before_anything_else_about_the_target() -> None:
    # A refused referrer learns neither that the target is a sidecar nor that it is invalid.
    other = referrer(namespace="team-b", pipelineRef={"name": "gateway", "namespace": "team-a"})
    for target in (
        manifest("gateway", "team-a", mode="sidecar"),
        manifest("gateway", "team-a", replicas="x"),
    ):
        assert [f.reason for f in resolve_against(other, target).failures] == ["NotAllowed"]


def test_the_same_namespace_needs_no_allow_list_entry() -> None:
    assert resolve_against(referrer(), GATEWAY).failures == []


def remembered(
    index: pipeline_refs.ReferrerIndex, pipeline: loader.OTLPPipeline, *bodies: dict[str, Any]
) -> None:
    index.remember(pipeline, resolve_against(pipeline, *bodies))


def test_a_target_change_that_moves_its_endpoint_reconciles_the_referrer() -> None:
    index = pipeline_refs.ReferrerIndex()
    remembered(index, referrer(), GATEWAY)
    moved = manifest("gateway", "team-a", receivers={"otlp": {"grpc": {"port": 14317}}})
    assert index.referrers_to_reconcile(("team-a", "gateway"), moved) == [("team-a", "apps")]


def test_a_target_change_that_resolves_the_same_reconciles_nobody() -> None:
    index = pipeline_refs.ReferrerIndex()
    remembered(index, referrer(), GATEWAY)
    status_only = copy.deepcopy(GATEWAY)
    status_only["status"] = {"observedGeneration": 3}
    status_only["spec"]["replicas"] = 4
    assert index.referrers_to_reconcile(("team-a", "gateway"), status_only) == []
    assert index.referrers_to_reconcile(("team-b", "gateway"), None) == []


def test_deleting_or_creating_a_target_reconciles_its_referrers() -> None:
    index = pipeline_refs.ReferrerIndex()
    remembered(index, referrer(), GATEWAY)
    assert index.referrers_to_reconcile(("team-a", "gateway"), None) == [("team-a", "apps")]
    missing = pipeline_refs.ReferrerIndex()
    remembered(missing, referrer())
    assert missing.referrers_to_reconcile(("team-a", "gateway"), GATEWAY) == [("team-a", "apps")]


def test_an_allow_list_change_reconciles_the_referrer_from_another_namespace() -> None:
    index = pipeline_refs.ReferrerIndex()
    other = referrer(namespace="team-b", pipelineRef={"name": "gateway", "namespace": "team-a"})
    remembered(index, other, GATEWAY)
    allowing = manifest("gateway", "team-a", allowedReferrerNamespaces=["team-b"])
    assert index.referrers_to_reconcile(("team-a", "gateway"), allowing) == [("team-b", "apps")]


def test_a_forgotten_referrer_is_never_reconciled() -> None:
    index = pipeline_refs.ReferrerIndex()
    remembered(index, referrer(), GATEWAY)
    index.forget(("team-a", "apps"))
    assert index.referrers_to_reconcile(("team-a", "gateway"), None) == []


def test_a_target_the_operator_may_not_read_says_so() -> None:
    other = referrer(pipelineRef={"name": "gateway", "namespace": "elsewhere"})
    resolution = pipeline_refs.resolve(other, {}, {("elsewhere", "gateway"): "403 Forbidden: no access"})
    (failure,) = resolution.failures
    assert (failure.reason, failure.target) == ("TargetUnreadable", "elsewhere/gateway")
    assert "cannot read OTLPPipeline elsewhere/gateway: 403 Forbidden" in failure.message


def test_two_pipelines_referencing_each_other_are_both_refused() -> None:
    gateway = manifest("gateway", "team-a", exporters=[{"name": "back", "pipelineRef": {"name": "apps"}}])
    apps = manifest("apps", "team-a", exporters=[{"name": "to-gateway", "pipelineRef": {"name": "gateway"}}])
    for referring, target in ((apps, gateway), (gateway, apps)):
        (failure,) = resolve_against(loader.load_document(referring), target).failures
        assert failure.reason == "ReferenceCycle"
        assert "exports back to this pipeline" in failure.message
    # A target that forwards elsewhere is no cycle.
    assert resolve_against(referrer(), GATEWAY).failures == []
