"""The pure pod transform: what `inject` adds, what it never touches, and that `remove` undoes it."""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest
from otlp_operator.injection import markers, transform

from tests.support.injection_inputs import (
    CONFIG_MAP,
    IMAGE,
    NEW,
    OLD,
    attributes_of,
    bare_pod,
    deployment_pod,
    env_of,
    pipeline,
    with_env,
)


def inject(pod, target=None, version=NEW, config_map=CONFIG_MAP):  # type: ignore[no-untyped-def]
    return transform.inject(
        pod, target or pipeline(), cluster_version=version, config_map=config_map, image=IMAGE
    )


def agent_of(pod):  # type: ignore[no-untyped-def]
    every = [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]
    (agent,) = [c for c in every if c["name"] == "otlp-agent"]
    return agent


def test_on_kubernetes_1_29_and_later_the_agent_is_the_first_init_container_and_restarts_always() -> None:
    injected = inject(deployment_pod(), version=(1, 29))
    first, *others = injected["spec"]["initContainers"]
    assert first["name"] == "otlp-agent" and first["restartPolicy"] == "Always"
    assert [c["name"] for c in others] == ["migrate"]
    assert [c["name"] for c in injected["spec"]["containers"]] == ["web", "worker"]
    assert first["startupProbe"]["httpGet"]["path"] == "/readyz"


def test_before_1_29_the_agent_is_a_regular_container_after_the_apps_and_kubectl_keeps_the_app() -> None:
    injected = inject(deployment_pod(), version=OLD)
    assert [c["name"] for c in injected["spec"]["containers"]] == ["web", "worker", "otlp-agent"]
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["migrate"]
    assert "restartPolicy" not in agent_of(injected)
    assert injected["metadata"]["annotations"][markers.DEFAULT_CONTAINER_ANNOTATION] == "web"


def test_a_default_container_the_user_chose_is_kept() -> None:
    pod = deployment_pod(**{markers.DEFAULT_CONTAINER_ANNOTATION: "worker"})
    injected = inject(pod, version=OLD)
    assert injected["metadata"]["annotations"][markers.DEFAULT_CONTAINER_ANNOTATION] == "worker"
    assert transform.remove(injected) == pod


def test_the_config_is_mounted_from_the_config_map_reconcile_published() -> None:
    injected = inject(
        deployment_pod(), target=pipeline(name="shop-agent"), config_map="shop-agent-config-ab12"
    )
    volumes = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert volumes["otlp-agent-config"]["configMap"] == {"name": "shop-agent-config-ab12"}
    assert "emptyDir" in volumes["otlp-agent-tmp"] and "data" in volumes
    mounts = {m["name"]: m for m in agent_of(injected)["volumeMounts"]}
    assert mounts["otlp-agent-config"] == {
        "name": "otlp-agent-config",
        "mountPath": "/etc/otlp-agent",
        "readOnly": True,
    }
    assert agent_of(injected)["args"] == ["run", "--config", "/etc/otlp-agent/pipeline.yaml"]


def test_the_agent_gets_the_injection_resources_of_the_spec() -> None:
    custom = {"resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "96Mi"}}}
    injected = inject(deployment_pod(), target=pipeline(injection=custom))
    assert agent_of(injected)["resources"] == custom["resources"]
    defaults = agent_of(inject(deployment_pod()))["resources"]
    assert defaults == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}


def test_the_agent_has_probes_and_a_restricted_security_context_and_its_image() -> None:
    agent = agent_of(inject(deployment_pod()))
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    security = agent["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert not security["allowPrivilegeEscalation"] and security["capabilities"] == {"drop": ["ALL"]}
    assert agent["image"] == IMAGE
    assert agent_of(inject(deployment_pod(), target=pipeline(image="mine:2")))["image"] == "mine:2"


def test_app_containers_export_over_http_to_the_sidecar_on_localhost() -> None:
    injected = inject(deployment_pod())
    for name in ("web", "worker"):
        env = env_of(injected, name)
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env_of(injected, "worker")["MODE"] == "jobs"


def test_the_endpoint_follows_the_spec_ports_and_falls_back_to_grpc() -> None:
    grpc_only = pipeline(receivers={"otlp": {"http": {"enabled": False}, "grpc": {"port": 14317}}})
    env = env_of(inject(deployment_pod(), target=grpc_only), "web")
    assert (env["OTEL_EXPORTER_OTLP_ENDPOINT"], env["OTEL_EXPORTER_OTLP_PROTOCOL"]) == (
        "http://127.0.0.1:14317",
        "grpc",
    )
    other_port = pipeline(receivers={"otlp": {"http": {"port": 14318}}})
    assert env_of(inject(deployment_pod(), target=other_port), "web")["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://127.0.0.1:14318"
    )


def test_the_service_name_is_the_deployment_name_without_the_pod_template_hash() -> None:
    assert env_of(inject(deployment_pod()), "web")["OTEL_SERVICE_NAME"] == "web"


def test_the_service_name_is_the_owner_name_or_the_pod_name() -> None:
    stateful = bare_pod()
    stateful["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": True}
    ]
    assert env_of(inject(stateful), "main")["OTEL_SERVICE_NAME"] == "db"
    assert attributes_of(inject(stateful), "main")["k8s.statefulset.name"] == "db"
    assert env_of(inject(bare_pod("debug")), "main")["OTEL_SERVICE_NAME"] == "debug"


def test_resource_attributes_name_the_pod_node_namespace_container_and_owners() -> None:
    injected = inject(deployment_pod())
    assert attributes_of(injected, "worker") == {
        "k8s.namespace.name": "$(OTEL_K8S_NAMESPACE_NAME)",
        "k8s.pod.name": "$(OTEL_K8S_POD_NAME)",
        "k8s.pod.uid": "$(OTEL_K8S_POD_UID)",
        "k8s.node.name": "$(OTEL_K8S_NODE_NAME)",
        "k8s.container.name": "worker",
        "k8s.replicaset.name": "web-7d4b9c8f5",
        "k8s.deployment.name": "web",
    }


def test_every_referenced_variable_is_defined_earlier_from_the_downward_api() -> None:
    injected = inject(with_env(deployment_pod(), "web", {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "a=b"}))
    (web,) = [c for c in injected["spec"]["containers"] if c["name"] == "web"]
    defined: dict[str, str] = {}
    for entry in web["env"]:
        for ref in _references(entry.get("value", "")):
            assert ref in defined, f"{entry['name']} refers to {ref} before it is defined"
        if "valueFrom" in entry:
            defined[entry["name"]] = entry["valueFrom"]["fieldRef"]["fieldPath"]
    assert defined == {
        "OTEL_K8S_NAMESPACE_NAME": "metadata.namespace",
        "OTEL_K8S_POD_NAME": "metadata.name",
        "OTEL_K8S_POD_UID": "metadata.uid",
        "OTEL_K8S_NODE_NAME": "spec.nodeName",
    }


def _references(value: str) -> list[str]:
    import re

    return re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value)


def test_variables_the_user_set_are_never_overwritten() -> None:
    mine = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://elsewhere:4317"},
        {"name": "OTEL_SERVICE_NAME", "value": "checkout"},
    ]
    env = env_of(inject(with_env(deployment_pod(), "web", *mine)), "web")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://elsewhere:4317"
    assert env["OTEL_SERVICE_NAME"] == "checkout"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in env  # the user's endpoint decides its own protocol


def test_a_protocol_the_user_chose_gets_the_endpoint_of_that_protocol() -> None:
    pod = with_env(deployment_pod(), "web", {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"})
    env = env_of(inject(pod), "web")
    assert (env["OTEL_EXPORTER_OTLP_ENDPOINT"], env["OTEL_EXPORTER_OTLP_PROTOCOL"]) == (
        "http://127.0.0.1:4317",
        "grpc",
    )


def test_user_resource_attributes_win_and_only_missing_keys_are_appended() -> None:
    mine = {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "team=shop,k8s.container.name=frontend"}
    injected = inject(with_env(deployment_pod(), "web", mine))
    attributes = attributes_of(injected, "web")
    assert attributes["team"] == "shop" and attributes["k8s.container.name"] == "frontend"
    assert attributes["k8s.deployment.name"] == "web"
    value = env_of(injected, "web")["OTEL_RESOURCE_ATTRIBUTES"]
    assert value.startswith("team=shop,k8s.container.name=frontend,")


def test_a_service_name_in_the_users_attributes_is_not_overridden_by_otel_service_name() -> None:
    mine = {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=cart"}
    env = env_of(inject(with_env(deployment_pod(), "web", mine)), "web")
    assert "OTEL_SERVICE_NAME" not in env


def test_resource_attributes_from_a_secret_are_left_alone() -> None:
    secret = {"secretKeyRef": {"name": "otel", "key": "attributes"}}
    injected = inject(
        with_env(deployment_pod(), "web", {"name": "OTEL_RESOURCE_ATTRIBUTES", "valueFrom": secret})
    )
    assert env_of(injected, "web")["OTEL_RESOURCE_ATTRIBUTES"] == secret


def test_init_containers_are_not_wired() -> None:
    injected = inject(deployment_pod())
    (migrate,) = [c for c in injected["spec"]["initContainers"] if c["name"] == "migrate"]
    assert migrate == {"name": "migrate", "image": "web:1"}


def test_the_pod_is_marked_with_the_pipeline_and_its_config_map() -> None:
    injected = inject(deployment_pod(), config_map="agent-config-feedbeef00")
    assert injected["metadata"]["labels"][markers.INJECTED_LABEL] == "agent"
    assert injected["metadata"]["annotations"][markers.PIPELINE_ANNOTATION] == "shop/agent"
    assert injected["metadata"]["annotations"][markers.CONFIG_MAP_ANNOTATION] == "agent-config-feedbeef00"
    assert transform.is_injected(injected) and not transform.is_injected(deployment_pod())


def test_injecting_twice_changes_nothing() -> None:
    once = inject(deployment_pod())
    assert inject(once) == once
    assert inject(inject(bare_pod(), version=OLD), version=OLD) == inject(bare_pod(), version=OLD)


def test_a_pod_copied_from_an_injected_one_of_old_pod_settings_gets_exactly_one_fresh_agent() -> None:
    stale = inject(deployment_pod(), config_map="agent-config-old0000000")
    fresh = inject(stale, config_map="agent-config-new0000000")
    assert fresh == inject(deployment_pod(), config_map="agent-config-new0000000")
    assert len([c for c in fresh["spec"]["initContainers"] if c["name"] == "otlp-agent"]) == 1


@pytest.mark.parametrize("version", [NEW, OLD])
@pytest.mark.parametrize(
    "pod",
    [
        deployment_pod(),
        bare_pod(),
        with_env(deployment_pod(), "web", {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "a=b"}),
        with_env(bare_pod(), "main", {"name": "OTEL_SERVICE_NAME", "value": "x"}),
    ],
    ids=["deployment", "bare", "user-attributes", "user-service-name"],
)
def test_remove_undoes_inject_exactly(pod: dict, version: tuple[int, int]) -> None:  # type: ignore[type-arg]
    original = copy.deepcopy(pod)
    injected = inject(pod, version=version)
    assert pod == original, "inject must not modify its input"
    assert transform.remove(injected) == original


def test_a_pod_declaring_an_agent_port_is_refused() -> None:
    pod = bare_pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8888}]
    with pytest.raises(transform.Refusal) as caught:
        inject(pod)
    assert caught.value.reason == "PortConflict" and "8888" in caught.value.message


def test_a_pod_with_a_container_named_like_the_agent_is_refused() -> None:
    pod = bare_pod()
    pod["spec"]["containers"].append({"name": "otlp-agent", "image": "mine"})
    with pytest.raises(transform.Refusal) as caught:
        inject(pod)
    assert caught.value.reason == "ContainerNameTaken"


def test_a_gateway_target_wires_the_apps_to_its_service_and_adds_no_container() -> None:
    gateway = pipeline(name="gateway", namespace="shop", mode="deployment")
    pod = deployment_pod()
    injected = inject(pod, target=gateway)
    assert injected["spec"]["initContainers"] == pod["spec"]["initContainers"]
    assert [c["name"] for c in injected["spec"]["containers"]] == ["web", "worker"]
    assert injected["spec"]["volumes"] == pod["spec"]["volumes"]
    assert env_of(injected, "web")["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://gateway-otlp.shop.svc:4318"
    assert markers.CONFIG_MAP_ANNOTATION not in injected["metadata"]["annotations"]
    assert injected["metadata"]["annotations"][markers.PIPELINE_ANNOTATION] == "shop/gateway"
    assert transform.remove(injected) == pod


def test_a_node_agent_target_wires_the_apps_to_the_node_ip() -> None:
    node = pipeline(name="nodes", mode="daemonset", receivers={"otlp": {"http": {"enabled": False}}})
    env = env_of(inject(deployment_pod(), target=node), "web")
    assert env["OTEL_K8S_NODE_IP"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://$(OTEL_K8S_NODE_IP):4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"


def test_the_record_annotation_is_json_naming_what_was_added() -> None:
    injected = inject(with_env(deployment_pod(), "web", {"name": "OTEL_SERVICE_NAME", "value": "x"}))
    record = json.loads(injected["metadata"]["annotations"][markers.RECORD_ANNOTATION])
    assert "OTEL_SERVICE_NAME" not in record["env"]["web"]["variables"]
    assert "OTEL_SERVICE_NAME" in record["env"]["worker"]["variables"]


@pytest.mark.parametrize(("version", "schema"), [(NEW, "1.30"), (OLD, "1.27")])
def test_the_injected_pod_is_valid_for_the_kubernetes_api(version: tuple[int, int], schema: str) -> None:
    kubernetes_validate.validate(inject(deployment_pod(), version=version), schema, strict=True)


def test_a_pipeline_allowing_other_namespaces_gets_its_config_copied_there_and_only_there() -> None:
    from otlp_operator.injection import configcopy
    from otlp_operator.manifests import configmap

    shared = pipeline(injection={"allowed": {"namespaces": ["web", "shop", "api"]}})
    copies = configcopy.build(shared, IMAGE)
    assert [c["metadata"]["namespace"] for c in copies] == ["api", "web"]  # not its own namespace
    original = configmap.build(shared, IMAGE)
    for found in copies:
        assert found["metadata"]["name"] == original["metadata"]["name"]
        assert found["data"] == original["data"] and "immutable" not in found
        hashes = [
            o["metadata"]["annotations"]["telemetry.otlp-operator.io/config-hash"] for o in (found, original)
        ]
        assert hashes[0] == hashes[1]
        assert "ownerReferences" not in found["metadata"]
        assert "telemetry.otlp-operator.io/pipeline" not in found["metadata"]["labels"]  # not a child
        assert found["metadata"]["labels"]["telemetry.otlp-operator.io/config-of"] == "agent"
        assert found["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"  # the agent image's tag
    assert configcopy.build(pipeline(), IMAGE) == []


def test_the_sidecar_config_map_keeps_its_name_for_pipeline_config_changes_and_not_for_pod_ones() -> None:
    from otlp_operator.manifests import configmap

    def name(**fields: object) -> str:
        return configmap.name(pipeline(**fields), IMAGE)

    assert (
        name()
        == name(processors={"batch": {"timeout": "1s"}})
        == name(exporters=[{"name": "x", "debug": {}}])
    )
    assert name() != name(injection={"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}})
    assert name() != name(image="mirror.test/agent:2")
    assert name() != name(receivers={"otlp": {"http": {"port": 14318}}})
