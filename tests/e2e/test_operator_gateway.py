"""The gateway example through its whole life with the real operator and the real kubectl:
create → children with the right ports and config → edit the pipeline config: the same ConfigMap
rewritten, the pods left alone → a pod-level edit: a new ConfigMap and pod template, the old ConfigMap
pruned after the rollout → a deleted or edited child is restored → an invalid spec is rejected by the
webhook with every field path → delete the pipeline → its children are garbage-collected."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

from otlp_agent.api import loader

from tests.support.operator_harness import (
    EXAMPLES,
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
    webhook_for_tests,
)

SELECTOR = "telemetry.otlp-operator.io/pipeline=gateway"
HASH = "telemetry.otlp-operator.io/config-hash"
CHILD_KINDS = ("configmaps", "serviceaccounts", "services", "deployments", "poddisruptionbudgets")


def config_maps(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {cm["metadata"]["name"]: cm for cm in cluster.list("configmaps", SELECTOR)}


def mounted(cluster: Cluster) -> str | None:
    """The ConfigMap the Deployment's pod template mounts."""
    deployment = cluster.get("deployments", "gateway-agent") or {}
    volumes = (deployment.get("spec") or {}).get("template", {}).get("spec", {}).get("volumes") or []
    return next((v["configMap"]["name"] for v in volumes if v["name"] == "config"), None)


def ready(cluster: Cluster) -> bool:
    return cluster.condition("gateway", "Ready").get("status") == "True"


def assert_children_match_the_example(cluster: Cluster, manifest: dict[str, Any]) -> str:
    """Ports, config and hash wiring of the children; returns the config hash."""
    status = cluster.status("gateway")
    config_hash = status["configHash"]
    (config_map,) = config_maps(cluster).values()
    assert config_map["metadata"]["name"] == status["configRollout"]["configMap"]
    assert config_map["metadata"]["annotations"][HASH] == config_hash
    rendered = loader.load_text(config_map["data"]["pipeline.yaml"])
    assert rendered.spec.exporters == loader.load_document(manifest).spec.exporters
    service = cluster.get("services", "gateway-otlp")
    assert service is not None
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "otlp-grpc": 4317,
        "otlp-http": 4318,
        "metrics": 8888,
    }
    deployment = cluster.get("deployments", "gateway-agent")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert HASH not in pod["metadata"]["annotations"], "the pod template holds nothing of the config"
    assert {"configMap": {"name": config_map["metadata"]["name"]}}.items() <= pod["spec"]["volumes"][
        0
    ].items()
    assert status["endpoints"] == {
        "grpc": f"gateway-otlp.{NAMESPACE}.svc:4317",
        "http": f"http://gateway-otlp.{NAMESPACE}.svc:4318",
    }
    for kind in CHILD_KINDS:
        for child in cluster.list(kind, SELECTOR):
            (owner,) = child["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"], owner["controller"]) == ("OTLPPipeline", "gateway", True)
    return str(config_hash)


def test_the_gateway_example_from_create_to_garbage_collection(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    manifest = example("gateway.yaml")
    with operator_running(config_for_tests(webhook=webhook_for_tests(tmp_path))):
        cluster.wait_for_webhook()
        cluster.kubectl("apply", "-f", str(EXAMPLES / "gateway.yaml"))

        # create: every child appears, wired to the same config hash; status reports the rollout.
        cluster.wait_for(lambda: cluster.status("gateway").get("configHash"), what="status")
        cluster.wait_for(lambda: cluster.get("poddisruptionbudgets", "gateway-agent"), what="PDB")
        first_hash = assert_children_match_the_example(cluster, manifest)
        assert cluster.status("gateway")["observedGeneration"] == 1
        assert cluster.condition("gateway", "ConfigValid")["status"] == "True"
        cluster.workload_ready("deployments", "gateway-agent")
        cluster.wait_for(
            lambda: ready(cluster), timeout=120 if cluster.emulator is None else 10, what="Ready"
        )
        assert cluster.status("gateway")["readyReplicas"] == 2
        reasons = {e["reason"] for e in cluster.events("gateway")}
        assert {"Applied", "Valid", "AgentsReady", "RolloutComplete"} <= reasons

        # edit the pipeline config: the same ConfigMap rewritten, the Deployment untouched (agents reload).
        first_map = mounted(cluster)
        generation = cluster.get("deployments", "gateway-agent")["metadata"]["generation"]  # type: ignore[index]
        edited = copy.deepcopy(manifest)
        edited["spec"]["processors"]["batch"]["maxItems"] = 4096
        apply_yaml(cluster, edited)
        cluster.wait_for(
            lambda: cluster.status("gateway").get("observedGeneration") == 2, what="generation 2"
        )
        second_hash = cluster.status("gateway")["configHash"]
        assert second_hash != first_hash
        assert set(config_maps(cluster)) == {first_map}
        assert config_maps(cluster)[str(first_map)]["metadata"]["annotations"][HASH] == second_hash
        assert "maxItems: 4096" in config_maps(cluster)[str(first_map)]["data"]["pipeline.yaml"]
        deployment = cluster.get("deployments", "gateway-agent") or {}
        assert (mounted(cluster), deployment["metadata"]["generation"]) == (first_map, generation)

        # a pod-level edit: a new ConfigMap, a new pod template; the old ConfigMap goes after the rollout.
        resized = copy.deepcopy(edited)
        resized["spec"]["resources"]["requests"]["cpu"] = "750m"
        apply_yaml(cluster, resized)
        cluster.wait_for(lambda: mounted(cluster) not in (None, first_map), what="a new pod template")
        second_map = mounted(cluster)
        assert second_map in config_maps(cluster)
        cluster.wait_for(
            lambda: cluster.status("gateway").get("observedGeneration") == 3, what="generation 3"
        )
        assert cluster.status("gateway")["configRollout"]["configMap"] == second_map
        cluster.workload_ready("deployments", "gateway-agent")
        cluster.wait_for(lambda: set(config_maps(cluster)) == {second_map}, what="old CM pruned")

        # a deleted child comes back; an edited one is set back.
        old_uid = cluster.get("services", "gateway-otlp")["metadata"]["uid"]  # type: ignore[index]
        cluster.kubectl("delete", "service", "gateway-otlp", "-n", NAMESPACE)
        cluster.wait_for(
            lambda: (
                (cluster.get("services", "gateway-otlp") or {}).get("metadata", {}).get("uid")
                not in (None, old_uid)
            ),
            what="Service restored",
        )
        cluster.kubectl("scale", "deployment", "gateway-agent", "-n", NAMESPACE, "--replicas=5")
        cluster.wait_for(
            lambda: cluster.get("deployments", "gateway-agent")["spec"]["replicas"] == 2,  # type: ignore[index]
            what="replicas restored",
        )

        # an invalid spec is rejected at admission with every problem and its field path.
        invalid = copy.deepcopy(edited)
        invalid["spec"]["exporters"][0]["protocol"] = "grpc"  # with zstd: a rule the CRD schema cannot check
        invalid["spec"]["receivers"]["otlp"]["http"]["port"] = 4317
        rejected = apply_yaml(cluster, invalid, check=False)
        assert rejected.returncode != 0
        assert (
            "denied the request: OTLPPipeline observability/gateway is invalid (2 problems)"
            in rejected.stderr
        )
        assert "spec.exporters[0].compression: zstd is only available over HTTP" in rejected.stderr
        assert "spec.receivers.otlp.http.port: port 4317 is already used" in rejected.stderr
        assert cluster.get("otlppipelines", "gateway")["metadata"]["generation"] == 3  # type: ignore[index]

        # delete the pipeline: every child is garbage-collected.
        cluster.kubectl("delete", "-f", str(EXAMPLES / "gateway.yaml"), "--wait=true", "--timeout=30s")
        for kind in CHILD_KINDS:
            cluster.wait_for(lambda kind=kind: not cluster.list(kind, SELECTOR), what=f"{kind} collected")


def test_kubectl_scale_on_the_pipeline_scales_the_gateway_and_get_shows_its_state(cluster: Cluster) -> None:
    with operator_running(config_for_tests()):
        cluster.kubectl("apply", "-f", str(EXAMPLES / "gateway.yaml"))
        cluster.wait_for(lambda: cluster.status("gateway").get("selector"), what="status with selector")
        cluster.kubectl("scale", "otlppipeline", "gateway", "-n", NAMESPACE, "--replicas=3")
        cluster.wait_for(
            lambda: (cluster.get("deployments", "gateway-agent") or {}).get("spec", {}).get("replicas") == 3,
            what="Deployment scaled",
        )
        cluster.workload_ready("deployments", "gateway-agent")
        cluster.wait_for(lambda: cluster.status("gateway").get("readyReplicas") == 3, what="3 ready")
        path = f"/apis/telemetry.otlp-operator.io/v1alpha1/namespaces/{NAMESPACE}/otlppipelines/gateway/scale"
        scale = json.loads(cluster.kubectl("get", "--raw", path).stdout)
        assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
        assert scale["status"]["selector"] == cluster.status("gateway")["selector"]
        header, row = cluster.kubectl("get", "otlpp", "gateway", "-n", NAMESPACE).stdout.splitlines()
        assert header.split() == ["NAME", "MODE", "VERSION", "READY", "STATUS", "ENDPOINT", "AGE"]
        endpoint = f"gateway-otlp.{NAMESPACE}.svc:4317"
        assert row.split()[:-1] == ["gateway", "deployment", "e2e", "3/3", "AgentsReady", endpoint]
