"""What the builders promise for each mode and feature, as a user of the rendered objects sees it."""

from __future__ import annotations

from typing import Any

import yaml
from otlp_agent.api import loader, spec
from otlp_operator import manifests, naming
from otlp_operator.manifests import agentconfig

from tests.support import manifest_cases as support


def pipeline(name: str = "gw", namespace: str = "obs", **fields: Any) -> loader.OTLPPipeline:
    body = {"exporters": [support.EXPORTER], **fields}
    return loader.OTLPPipeline(name, namespace, spec.OTLPPipelineSpec.model_validate(body))


def kinds(p: loader.OTLPPipeline, **kwargs: Any) -> dict[str, dict[str, Any]]:
    return support.by_kind(manifests.build_all(p, agent_image=support.IMAGE, **kwargs))


def pod_spec(p: loader.OTLPPipeline) -> dict[str, Any]:
    objects = kinds(p)
    workload = objects.get("Deployment") or objects.get("StatefulSet") or objects["DaemonSet"]
    return dict(workload["spec"]["template"]["spec"])


def agent(p: loader.OTLPPipeline) -> dict[str, Any]:
    return dict(pod_spec(p)["containers"][0])


def test_each_mode_creates_its_objects_in_apply_order() -> None:
    listed = {
        mode: [o["kind"] for o in manifests.build_all(pipeline(mode=mode), agent_image=support.IMAGE)]
        for mode in ("deployment", "statefulset", "daemonset", "sidecar")
    }
    assert listed == {
        "deployment": ["ConfigMap", "ServiceAccount", "Service", "Service", "Deployment"],
        "statefulset": ["ConfigMap", "ServiceAccount", "Service", "Service", "StatefulSet"],
        "daemonset": ["ConfigMap", "ServiceAccount", "Service", "DaemonSet"],
        "sidecar": ["ConfigMap"],
    }


def test_the_config_map_holds_a_manifest_the_agent_loads_back_to_the_same_spec() -> None:
    p = pipeline(processors={"batch": {"timeout": "1s", "maxBytes": "1Mi"}}, replicas=3)
    text = kinds(p)["ConfigMap"]["data"]["pipeline.yaml"]
    loaded = loader.load_text(text)
    assert (loaded.name, loaded.namespace) == ("gw", "obs")
    assert loaded.spec == p.spec.model_copy(update={"replicas": 1})
    assert yaml.safe_load(text)["spec"]["processors"]["batch"]["timeout"] == "1s"


def test_every_default_is_written_out_in_the_agent_config() -> None:
    text = agentconfig.render(pipeline()).text
    rendered_spec = yaml.safe_load(text)["spec"]
    assert rendered_spec["receivers"]["otlp"]["grpc"]["port"] == 4317
    assert rendered_spec["exporters"][0]["retry"]["maxElapsed"] == "5m"
    assert rendered_spec["lifecycle"]["shutdownGracePeriod"] == "25s"


def config_change(**changed: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    before = kinds(pipeline(mode="statefulset"))
    after = kinds(pipeline(mode="statefulset", **changed))
    return before, after


def test_a_pipeline_config_change_rewrites_the_config_map_and_leaves_the_pods_alone() -> None:
    edits: list[dict[str, Any]] = [
        {"telemetry": {"logLevel": "debug"}},
        {"exporters": [{**support.EXPORTER, "compression": "zstd", "retry": {"maxElapsed": "1m"}}]},
        {
            "processors": {
                "batch": {"timeout": "1s"},
                "filter": {"rules": [{"name": "x", "all": [{"spanName": {"equals": "a"}}]}]},
            }
        },
        {"routes": {"default": ["backend"]}},
    ]
    for edit in edits:
        before, after = config_change(**edit)
        assert before["ConfigMap"]["metadata"]["name"] == after["ConfigMap"]["metadata"]["name"], edit
        assert before["ConfigMap"]["data"] != after["ConfigMap"]["data"], edit
        assert before["StatefulSet"]["spec"]["template"] == after["StatefulSet"]["spec"]["template"], edit
        hashes = [
            o["ConfigMap"]["metadata"]["annotations"][naming.CONFIG_HASH_ANNOTATION] for o in (before, after)
        ]
        assert hashes[0] != hashes[1]


def test_a_pod_level_change_renames_the_config_map_and_rolls_the_pods() -> None:
    edits: list[dict[str, Any]] = [
        {"image": "mirror.test/agent:2"},
        {"receivers": {"otlp": {"grpc": {"port": 14317}}}},
        {"telemetry": {"port": 9999}},
        {"resources": {"requests": {"cpu": "1"}}},
        {"env": [{"name": "X", "value": "1"}]},
        {"lifecycle": {"shutdownGracePeriod": "50s"}},
        {
            "exporters": [
                {
                    **support.EXPORTER,
                    "headersFrom": [{"name": "x-key", "secretKeyRef": {"name": "k", "key": "v"}}],
                }
            ]
        },
    ]
    for edit in edits:
        before, after = config_change(**edit)
        names = [o["ConfigMap"]["metadata"]["name"] for o in (before, after)]
        assert names[0] != names[1], edit
        templates = [o["StatefulSet"]["spec"]["template"] for o in (before, after)]
        assert templates[0] != templates[1], edit
        mounted = [v["configMap"]["name"] for v in templates[1]["spec"]["volumes"] if v["name"] == "config"]
        assert mounted == [names[1]], "new pods mount the config made for them"


def test_scaling_a_gateway_does_not_roll_its_pods() -> None:
    one, five = kinds(pipeline(replicas=1)), kinds(pipeline(replicas=5))
    assert one["Deployment"]["spec"]["template"] == five["Deployment"]["spec"]["template"]
    assert five["Deployment"]["spec"]["replicas"] == 5


def test_selector_labels_survive_every_spec_change() -> None:
    variants = [
        pipeline(),
        pipeline(mode="daemonset", image="other:2"),
        pipeline(replicas=4, telemetry={"port": 9999}),
        pipeline(receivers={"otlp": {"grpc": {"enabled": False}}}),
    ]
    selectors = [
        (kinds(p).get("Deployment") or kinds(p)["DaemonSet"])["spec"]["selector"]["matchLabels"]
        for p in variants
    ]
    assert all(s == selectors[0] for s in selectors)
    node_agent = kinds(variants[1])["DaemonSet"]
    for labels in (node_agent["metadata"]["labels"], node_agent["spec"]["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/component"] == "node-agent"
        assert labels["app.kubernetes.io/version"] == "2"  # the tag of its image, other:2


def test_every_child_and_pod_carries_the_agent_version_and_what_it_is() -> None:
    for p, component in ((pipeline(), "gateway"), (pipeline(mode="sidecar"), "sidecar")):
        for obj in manifests.build_all(p, agent_image="ghcr.io/otlp-operator/otlp-agent:0.7.1"):
            assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == "0.7.1", obj["kind"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == component, obj["kind"]


def test_only_enabled_receivers_get_ports_and_endpoints() -> None:
    p = pipeline(receivers={"otlp": {"http": {"enabled": False}, "grpc": {"port": 14317}}})
    assert [port["name"] for port in agent(p)["ports"]] == ["otlp-grpc", "metrics"]
    assert [port["port"] for port in kinds(p)["Service"]["spec"]["ports"]] == [14317, 8888]
    assert naming.endpoints(p) == {"grpc": "gw-otlp.obs.svc:14317", "http": None}


def test_endpoints_name_the_service_for_gateways_and_nothing_for_sidecars() -> None:
    assert naming.endpoints(pipeline()) == {
        "grpc": "gw-otlp.obs.svc:4317",
        "http": "http://gw-otlp.obs.svc:4318",
    }
    assert naming.endpoints(pipeline(mode="sidecar")) == {"grpc": None, "http": None}


def test_the_agent_runs_the_mounted_config_with_its_identity_in_the_environment() -> None:
    container = agent(pipeline(env=[{"name": "LOG_FORMAT", "value": "json"}]))
    assert container["args"] == ["run", "--config", "/etc/otlp-agent/pipeline.yaml"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/otlp-agent"]["readOnly"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["OTLP_AGENT_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["OTLP_AGENT_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["LOG_FORMAT"] == {"name": "LOG_FORMAT", "value": "json"}


def test_a_spec_variable_with_a_reserved_name_replaces_ours_instead_of_duplicating_it() -> None:
    container = agent(pipeline(env=[{"name": "OTLP_AGENT_NODE_NAME", "value": "fixed"}]))
    names = [e["name"] for e in container["env"]]
    assert names.count("OTLP_AGENT_NODE_NAME") == 1
    assert {"name": "OTLP_AGENT_NODE_NAME", "value": "fixed"} in container["env"]


def test_spec_image_wins_over_the_operator_default() -> None:
    assert agent(pipeline())["image"] == support.IMAGE
    assert agent(pipeline(image="mirror.test/agent:9"))["image"] == "mirror.test/agent:9"


def test_scheduling_and_grace_period_come_from_the_spec() -> None:
    p = pipeline(
        nodeSelector={"pool": "telemetry"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "otel", "effect": "NoSchedule"}],
        priorityClassName="high",
        lifecycle={"shutdownGracePeriod": "40.2s"},
        resources={"requests": {"cpu": "300m"}, "limits": {"memory": "1Gi"}},
    )
    pod = pod_spec(p)
    assert pod["nodeSelector"] == {"pool": "telemetry"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "otel", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "high"
    assert pod["terminationGracePeriodSeconds"] == 46
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "300m"}, "limits": {"memory": "1Gi"}}


def test_multi_replica_gateways_get_a_disruption_budget_and_single_ones_do_not() -> None:
    assert "PodDisruptionBudget" not in kinds(pipeline(replicas=1))
    assert kinds(pipeline(replicas=2))["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "PodDisruptionBudget" not in kinds(pipeline(autoscaling={"minReplicas": 1}, replicas=3))
    assert "PodDisruptionBudget" in kinds(pipeline(autoscaling={"minReplicas": 2}))


def test_autoscaling_creates_an_hpa_and_leaves_replicas_to_it() -> None:
    objects = kinds(pipeline(autoscaling={"minReplicas": 2, "maxReplicas": 7, "targetCpuUtilization": 60}))
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert "replicas" not in objects["Deployment"]["spec"]


def persistent(**fields: Any) -> loader.OTLPPipeline:
    queue = {"type": "persistent", "storageSize": "1Gi"}
    exporters = [
        {**support.EXPORTER, "name": "a", "queue": {**queue, "storageClassName": "ssd"}},
        {**support.EXPORTER, "name": "b", "queue": queue},
        {**support.EXPORTER, "name": "c"},
    ]
    return pipeline(exporters=exporters, **fields)


def queue_volume(p: loader.OTLPPipeline) -> dict[str, Any]:
    (volume,) = [v for v in pod_spec(p)["volumes"] if v["name"] == "queue"]
    return dict(volume)


def test_a_single_replica_persistent_gateway_gets_one_claim_and_recreates_on_rollout() -> None:
    objects = kinds(persistent())
    claim = objects["PersistentVolumeClaim"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "ssd"
    assert queue_volume(persistent())["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert objects["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e.get("value") for e in agent(persistent())["env"]}
    assert env["OTLP_AGENT_QUEUE_DIR"] == "/var/lib/otlp-agent"


def test_a_replicated_persistent_gateway_queues_on_a_sized_empty_dir_per_pod() -> None:
    for p in (persistent(replicas=3), persistent(autoscaling={"minReplicas": 1})):
        assert "PersistentVolumeClaim" not in kinds(p)
        assert queue_volume(p)["emptyDir"] == {"sizeLimit": "2Gi"}
        assert kinds(p)["Deployment"]["spec"]["strategy"]["type"] == "RollingUpdate"


def test_a_persistent_node_agent_queues_in_its_own_host_directory_handed_to_the_agent_user() -> None:
    p = persistent(mode="daemonset")
    assert queue_volume(p)["hostPath"] == {"path": "/var/lib/otlp-agent/obs/gw", "type": "DirectoryOrCreate"}
    (init,) = pod_spec(p)["initContainers"]
    assert init["command"][-2:] == ["/var/lib/otlp-agent", "10001"]
    assert init["securityContext"]["capabilities"] == {"add": ["CHOWN"], "drop": ["ALL"]}


def test_memory_queues_add_no_volume_and_no_init_container() -> None:
    pod = pod_spec(pipeline(mode="daemonset"))
    assert "initContainers" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"config", "tmp"}
    assert "OTLP_AGENT_QUEUE_DIR" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_node_agents_keep_traffic_on_their_node_and_gateways_do_not() -> None:
    assert kinds(pipeline(mode="daemonset"))["Service"]["spec"]["internalTrafficPolicy"] == "Local"
    assert "internalTrafficPolicy" not in kinds(pipeline())["Service"]["spec"]


def test_without_an_owner_no_object_has_owner_references() -> None:
    for obj in manifests.build_all(persistent(replicas=1), agent_image=support.IMAGE):
        assert "ownerReferences" not in obj["metadata"]


def test_a_flat_owner_and_a_whole_object_give_the_same_reference() -> None:
    whole = support.OWNER
    flat = {"apiVersion": whole["apiVersion"], "kind": whole["kind"], **whole["metadata"]}
    assert (
        kinds(pipeline(), owner=whole)["Service"]["metadata"]
        == kinds(pipeline(), owner=flat)["Service"]["metadata"]
    )


def test_a_long_dotted_pipeline_name_still_renders_valid_distinct_names() -> None:
    long_a = "team-payments.eu-west-1." + "x" * 200 + ".a"
    long_b = "team-payments.eu-west-1." + "x" * 200 + ".b"
    names = [
        {o["kind"]: o["metadata"]["name"] for o in support.build(pipeline(name=n))} for n in (long_a, long_b)
    ]
    for kind, name in names[0].items():
        assert naming.is_dns_label(name)
        assert name != names[1][kind]


def test_a_statefulset_gives_each_replica_its_own_claim_kept_on_scale_down() -> None:
    p = persistent(mode="statefulset", replicas=3)
    objects = kinds(p)
    sts = objects["StatefulSet"]["spec"]
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "queue"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "2Gi"}},
        "storageClassName": "ssd",
    }
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    assert sts["podManagementPolicy"] == "OrderedReady" and sts["replicas"] == 3
    assert "queue" not in {v["name"] for v in sts["template"]["spec"]["volumes"]}, (
        "the claim template mounts it"
    )
    mounts = {m["name"]: m["mountPath"] for m in sts["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["queue"] == "/var/lib/otlp-agent"
    assert "PersistentVolumeClaim" not in objects
    assert sts["serviceName"] == objects[support.HEADLESS]["metadata"]["name"] == "gw-otlp-headless"


def test_a_statefulset_without_persistent_queues_has_no_claims_and_scales_like_a_deployment() -> None:
    objects = kinds(pipeline(mode="statefulset", autoscaling={"minReplicas": 2, "maxReplicas": 4}))
    assert "volumeClaimTemplates" not in objects["StatefulSet"]["spec"]
    assert "replicas" not in objects["StatefulSet"]["spec"]
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "gw-agent"}
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_gateways_get_a_headless_service_of_ready_pods_and_node_agents_do_not() -> None:
    for mode in ("deployment", "statefulset"):
        objects = kinds(pipeline(mode=mode))
        headless = objects[support.HEADLESS]["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
        assert headless["selector"] == objects["Service"]["spec"]["selector"]
        assert headless["ports"] == objects["Service"]["spec"]["ports"]
    assert support.HEADLESS not in kinds(pipeline(mode="daemonset"))
    assert naming.endpoints(pipeline(), headless=True)["grpc"] == "gw-otlp-headless.obs.svc:4317"


def test_the_pod_template_holds_no_pipeline_config() -> None:
    secret = "a-route-nobody-should-see-in-the-pod-template"
    p = pipeline(routes={"rules": [{"name": secret, "exporters": ["backend"]}], "default": ["backend"]})
    objects = kinds(p)
    assert secret in objects["ConfigMap"]["data"]["pipeline.yaml"]
    assert secret not in yaml.safe_dump(objects["Deployment"])
