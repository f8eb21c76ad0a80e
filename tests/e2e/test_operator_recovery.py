"""The operator under adverse conditions: an API error mid-reconcile, an invalid spec stored while the
webhook was down, a child edited without any event reaching the operator, and a pipeline deleted while
the operator is not running. Plus autoscaling switched on and off."""

from __future__ import annotations

import copy

import pytest

from tests.support.operator_harness import (
    Cluster,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
)

SELECTOR = "telemetry.otlp-operator.io/pipeline=gateway"


def condition(cluster: Cluster, kind: str) -> tuple[str | None, str | None]:
    found = cluster.condition("gateway", kind)
    return found.get("status"), found.get("reason")


def created(cluster: Cluster) -> bool:
    return cluster.get("deployments", "gateway-agent") is not None and bool(cluster.status("gateway"))


def test_an_api_error_mid_reconcile_is_retried_and_converges(cluster: Cluster) -> None:
    if cluster.emulator is None:
        pytest.skip("fault injection needs the emulator (a real API server cannot be told to fail)")
    cluster.emulator.fail_next(
        "POST", r"/namespaces/observability/deployments$", 500, message="etcd leader lost"
    )
    with operator_running(config_for_tests()):
        apply_yaml(cluster, example("gateway.yaml"))
        cluster.wait_for(
            lambda: cluster.get("deployments", "gateway-agent"), what="Deployment after the retry"
        )
        cluster.wait_for(lambda: condition(cluster, "Degraded") == ("False", "AsExpected"), what="recovered")
    posts = [r for r in cluster.emulator.requests if r.method == "POST" and r.path.startswith("/api")]
    deployment_posts = [r.status for r in posts if r.path.endswith("/deployments")]
    assert deployment_posts == [500, 201]
    created = {"configmaps": 1, "serviceaccounts": 1, "services": 2}  # the Service and the headless one
    for kind, count in created.items():  # applied once, found in place on the retry
        assert [r.status for r in posts if r.path.endswith(f"/{kind}")] == [201] * count, kind
    warnings = [e for e in cluster.events("gateway") if e["type"] == "Warning"]
    assert any(e["reason"] == "ApplyFailed" and "etcd leader lost" in e["message"] for e in warnings)


def test_an_invalid_spec_stored_while_the_webhook_was_down_leaves_the_agents_alone(cluster: Cluster) -> None:
    manifest = example("gateway.yaml")
    with operator_running(config_for_tests()):  # no webhook: nothing stops an invalid spec at admission
        apply_yaml(cluster, manifest)
        cluster.wait_for(lambda: created(cluster), what="children")
        before = {kind: cluster.list(kind, SELECTOR) for kind in ("configmaps", "deployments", "services")}
        good_hash = cluster.status("gateway")["configHash"]

        invalid = copy.deepcopy(manifest)
        invalid["spec"]["receivers"]["otlp"]["http"]["port"] = 4317
        invalid["spec"]["exporters"][0]["protocol"] = "grpc"  # zstd over gRPC: refused by the rules
        apply_yaml(cluster, invalid)
        cluster.wait_for(
            lambda: condition(cluster, "ConfigValid") == ("False", "InvalidSpec"), what="invalid"
        )
        message = cluster.condition("gateway", "ConfigValid")["message"]
        assert "spec.receivers.otlp.http.port: port 4317 is already used" in message
        assert "spec.exporters[0].compression: zstd is only available over HTTP" in message
        assert condition(cluster, "Degraded") == ("True", "InvalidSpec")
        status = cluster.status("gateway")
        assert status["configHash"] == good_hash and status["observedGeneration"] == 2
        after = {kind: cluster.list(kind, SELECTOR) for kind in before}
        assert after == before  # not one child was written

        fixed = copy.deepcopy(manifest)
        fixed["spec"]["processors"]["batch"]["maxItems"] = 1024
        apply_yaml(cluster, fixed)
        cluster.wait_for(lambda: condition(cluster, "ConfigValid") == ("True", "Valid"), what="valid again")
        assert cluster.status("gateway")["configHash"] != good_hash


def test_the_drift_check_restores_a_child_that_no_event_reported(cluster: Cluster) -> None:
    with operator_running(config_for_tests(drift_interval=0.5)):
        apply_yaml(cluster, example("gateway.yaml"))
        cluster.wait_for(lambda: created(cluster), what="children")
        # Without the pipeline label the operator's watch no longer sees the Service at all.
        patch = (
            '{"metadata":{"labels":{"telemetry.otlp-operator.io/pipeline":null}},"spec":{"type":"NodePort"}}'
        )
        cluster.kubectl(
            "patch", "service", "gateway-otlp", "-n", "observability", "--type=merge", "-p", patch
        )

        def restored() -> bool:
            service = cluster.get("services", "gateway-otlp") or {}
            labels = service.get("metadata", {}).get("labels") or {}
            return labels.get("telemetry.otlp-operator.io/pipeline") == "gateway" and (
                service["spec"]["type"] == "ClusterIP"
            )

        cluster.wait_for(restored, what="Service restored by the drift check")


def test_a_pipeline_deleted_while_the_operator_is_down_takes_its_children_with_it(cluster: Cluster) -> None:
    with operator_running(config_for_tests()):
        apply_yaml(cluster, example("gateway.yaml"))
        cluster.wait_for(lambda: created(cluster), what="children")
    assert not cluster.get("otlppipelines", "gateway")["metadata"].get("finalizers")  # type: ignore[index]
    cluster.kubectl("delete", "otlppipeline", "gateway", "-n", "observability", "--timeout=20s")
    for kind in ("configmaps", "serviceaccounts", "services", "deployments", "poddisruptionbudgets"):
        cluster.wait_for(lambda kind=kind: not cluster.list(kind, SELECTOR), what=f"{kind} collected")


def test_autoscaling_adds_an_hpa_that_owns_the_replica_count_and_removing_it_restores_replicas(
    cluster: Cluster,
) -> None:
    manifest = example("gateway.yaml")
    scaled = copy.deepcopy(manifest)
    del scaled["spec"]["replicas"]
    scaled["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 6, "targetCpuUtilization": 60}
    with operator_running(config_for_tests()):
        apply_yaml(cluster, scaled)
        hpa = cluster.wait_for(lambda: cluster.get("horizontalpodautoscalers", "gateway-agent"), what="HPA")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway-agent"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
        # the autoscaler's choice of replicas is left alone by later reconciles
        cluster.kubectl("scale", "deployment", "gateway-agent", "-n", "observability", "--replicas=4")
        scaled["spec"]["processors"]["batch"]["maxItems"] = 2048
        apply_yaml(cluster, scaled)
        cluster.wait_for(
            lambda: cluster.status("gateway").get("observedGeneration") == 2, what="generation 2"
        )
        assert cluster.get("deployments", "gateway-agent")["spec"]["replicas"] == 4  # type: ignore[index]

        manifest["spec"]["replicas"] = 3
        apply_yaml(cluster, manifest)
        cluster.wait_for(
            lambda: cluster.get("horizontalpodautoscalers", "gateway-agent") is None, what="HPA gone"
        )
        cluster.wait_for(
            lambda: cluster.get("deployments", "gateway-agent")["spec"]["replicas"] == 3,  # type: ignore[index]
            what="replicas from the spec",
        )
