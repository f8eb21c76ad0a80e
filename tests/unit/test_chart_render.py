"""The chart, linted and rendered by the real Helm SDK with every ci/ value set, and what must hold in each.

Every rendered object is valid for Kubernetes 1.27 (the chart's kubeVersion floor) and the newest version
kubernetes-validate knows; the operator pod is locked down and probed on kopf's liveness endpoint; each
scenario produces the objects its values ask for, and nothing else.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.support import chart_render as support

KUBERNETES_VERSIONS = ["1.27", kubernetes_validate.latest_version()]
SCENARIOS = sorted(support.CI_VALUES)


@functools.cache
def rendered(scenario: str) -> list[dict[str, Any]]:
    return support.render(support.CI_VALUES[scenario])


def test_there_is_a_value_set_for_each_main_scenario() -> None:
    expected = {"default", "single-namespace", "cert-manager", "existing-secret", "service-monitor"}
    expected |= {"monitoring"}
    assert expected <= set(SCENARIOS)


def test_chart_metadata_declares_the_supported_kubernetes_and_app_version() -> None:
    metadata = support.chart().metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["kubeVersion"] == ">=1.27.0-0"
    assert metadata["appVersion"] == "0.1.0"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_strict_lint_passes_with_every_value_set(scenario: str) -> None:
    report = helm_python.lint(
        support.CHART, support.CI_VALUES[scenario], strict=True, namespace=support.NAMESPACE
    )
    assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_is_valid_for_the_kubernetes_api(scenario: str, version: str) -> None:
    for obj in rendered(scenario):
        if obj["kind"] not in support.THIRD_PARTY_KINDS:
            kubernetes_validate.validate(support.strip(obj), version, strict=True)


def test_the_validation_above_can_fail() -> None:
    deployment = support.strip(support.one(rendered("default"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27", strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_template_file_holds_one_kind(scenario: str) -> None:
    kinds: dict[str, set[str]] = {}
    for obj in rendered(scenario):
        kinds.setdefault(obj[support.TEMPLATE_KEY], set()).add(obj["kind"])
    assert all(len(found) == 1 for found in kinds.values()), kinds


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_names_are_dns_labels_and_namespaced_objects_live_in_the_release_namespace(scenario: str) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"}
    cluster_scoped |= {"MutatingWebhookConfiguration", "CustomResourceDefinition", "ClusterKopfPeering"}
    watched = support.CI_VALUES[scenario].get("watchNamespaces") or []
    for obj in rendered(scenario):
        name = obj["metadata"]["name"]
        if obj["kind"] == "CustomResourceDefinition":  # <plural>.<group>: a DNS subdomain
            assert name == "otlppipelines.telemetry.otlp-operator.io"
        else:
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["kind"] in ("Role", "RoleBinding") and name.endswith("-webhook-tls"):
            assert obj["metadata"]["namespace"] == support.NAMESPACE  # the operator's own certificate
        elif obj["kind"] in ("Role", "RoleBinding", "KopfPeering"):
            assert obj["metadata"]["namespace"] in watched
        else:
            assert obj["metadata"]["namespace"] == support.NAMESPACE


def test_a_long_release_name_still_gives_valid_names() -> None:
    rendered = support.chart().render(values={}, name="a" * 53, namespace=support.NAMESPACE)
    texts = [text for template, text in rendered.items() if template.endswith(".yaml")]
    names = [doc["metadata"]["name"] for text in texts for doc in yaml.safe_load_all(text) if doc]
    assert names and all(len(name) <= 63 for name in names)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_operator_pod_is_locked_down_live_while_it_answers_and_ready_when_its_webhooks_are(
    scenario: str,
) -> None:
    objects = rendered(scenario)
    pod = support.one(objects, "Deployment")["spec"]["template"]["spec"]
    container = support.operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    health = next(port for port in container["ports"] if port["name"] == "health")
    assert f"--health-port={health['containerPort']}" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_two_replicas_roll_one_at_a_time_and_share_one_peering_object() -> None:
    objects = rendered("default")
    deployment = support.one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    args = support.operator_container(objects)["args"]
    assert f"--peering={support.FULLNAME}" in args and "--peering-lifetime=30" in args
    peering = support.one(objects, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == support.FULLNAME
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"
    assert spread[0]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_a_namespaced_install_has_a_peering_object_in_each_watched_namespace() -> None:
    objects = support.render({"watchNamespaces": ["team-a", "team-b"]})
    peerings = support.by_kind(objects, "KopfPeering")
    assert {p["metadata"]["namespace"] for p in peerings} == {"team-a", "team-b"}
    assert not support.by_kind(objects, "ClusterKopfPeering")


def test_the_crd_is_a_template_kept_on_uninstall_and_identical_to_the_generated_one() -> None:
    crd = support.strip(support.one(rendered("default"), "CustomResourceDefinition"))
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    generated = yaml.safe_load((support.ROOT / "crds" / "otlppipelines.yaml").read_text(encoding="utf-8"))
    del crd["metadata"]["annotations"]
    assert crd == generated
    assert not support.by_kind(support.render({"crd": {"install": False}}), "CustomResourceDefinition")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_select_the_operator_pod(scenario: str) -> None:
    objects = rendered(scenario)
    deployment = support.one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"]]
    selectors += [
        obj["spec"]["selector"]["matchLabels"] for obj in support.by_kind(objects, "PodDisruptionBudget")
    ]
    selectors += [obj["spec"]["selector"] for obj in support.by_kind(objects, "Service")]
    assert all(selector.items() <= pod_labels.items() for selector in selectors)


def test_images_default_to_the_app_version_and_the_agent_image_reaches_the_operator() -> None:
    container = support.operator_container(rendered("default"))
    assert container["image"] == "ghcr.io/otlp-operator/otlp-operator:0.1.0"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["OTLP_OPERATOR_AGENT_IMAGE"] == "ghcr.io/otlp-operator/otlp-agent:0.1.0"


def test_image_tags_and_digests_come_from_values() -> None:
    container = support.operator_container(rendered("locked-down"))
    assert container["image"].endswith("otlp-operator@sha256:" + "0" * 63 + "1")
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert (
        env["OTLP_OPERATOR_AGENT_IMAGE"] == "registry.example.com/mirror/otlp-agent@sha256:" + "0" * 63 + "2"
    )
    tagged = support.operator_container(support.render({"image": {"tag": "0.2.0-rc.1"}}))
    assert tagged["image"] == "ghcr.io/otlp-operator/otlp-operator:0.2.0-rc.1"


def test_cluster_wide_by_default() -> None:
    objects = rendered("default")
    assert "--all-namespaces" in support.operator_container(objects)["args"]
    assert {obj["kind"] for obj in objects} >= {"ClusterRole", "ClusterRoleBinding"}
    # Only the operator's own certificate Secret is granted by a Role (in the release namespace).
    assert [role["metadata"]["name"] for role in support.by_kind(objects, "Role")] == [
        f"{support.FULLNAME}-webhook-tls"
    ]
    assert "namespaceSelector" not in support.validating_webhook(objects)


def test_watching_namespaces_uses_a_role_per_namespace_and_scopes_the_webhooks() -> None:
    objects = rendered("single-namespace")
    args = support.operator_container(objects)["args"]
    assert "--all-namespaces" not in args
    assert [arg for arg in args if arg.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    # Cluster-wide only what sidecar injection needs (namespaces are cluster-scoped) and the caBundle of
    # this release's two webhook configurations (by name).
    configurations = {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
        "resourceNames": [support.FULLNAME],
        "verbs": ["get", "patch"],
    }
    assert support.one(objects, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        configurations,
    ]
    plain = rendered("single-namespace-no-injection")
    assert support.one(plain, "ClusterRole")["rules"] == [
        {**configurations, "resources": ["validatingwebhookconfigurations"]}
    ]
    namespaced = [
        r for r in support.by_kind(plain, "Role") if not r["metadata"]["name"].endswith("-webhook-tls")
    ]
    assert [role["metadata"]["namespace"] for role in namespaced] == ["team-a"]
    watched_roles = [r for r in support.by_kind(objects, "Role") if r["metadata"]["name"] == support.FULLNAME]
    assert sorted(obj["metadata"]["namespace"] for obj in watched_roles) == ["team-a", "team-b"]
    for binding in support.by_kind(objects, "RoleBinding"):
        if binding["metadata"]["name"].endswith("-webhook-tls"):
            continue
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": support.FULLNAME,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": support.FULLNAME, "namespace": support.NAMESPACE}
        ]
    watched = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    assert support.validating_webhook(objects)["namespaceSelector"]["matchExpressions"] == [watched]
    injecting = support.one(objects, "MutatingWebhookConfiguration")["webhooks"][0]
    assert watched in injecting["namespaceSelector"]["matchExpressions"]


def test_the_cluster_role_is_bound_to_the_operator_service_account() -> None:
    objects = rendered("default")
    binding = support.one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == support.one(objects, "ClusterRole")["metadata"]["name"]
    service_account = support.one(objects, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account, "namespace": "otlp-system"}
    ]
    pod = support.one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account


def test_the_validating_webhook_fails_closed_and_sees_only_pipeline_writes() -> None:
    hook = support.validating_webhook(rendered("default"))
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [
        {
            "apiGroups": ["telemetry.otlp-operator.io"],
            "apiVersions": ["*"],
            "resources": ["otlppipelines"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    service = support.one(rendered("default"), "Service")
    assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    assert hook["clientConfig"]["service"]["port"] == service["spec"]["ports"][0]["port"]


def test_sidecar_injection_is_on_by_default_and_can_be_turned_off() -> None:
    objects = rendered("default")
    assert support.by_kind(objects, "MutatingWebhookConfiguration")
    assert "--inject-sidecars" in support.operator_container(objects)["args"]
    plain = rendered("single-namespace-no-injection")
    assert not support.by_kind(plain, "MutatingWebhookConfiguration")
    assert "--inject-sidecars" not in support.operator_container(plain)["args"]


def test_the_injection_webhook_fails_open_on_pod_creation_outside_the_release_namespace() -> None:
    configuration = support.one(rendered("injection"), "MutatingWebhookConfiguration")
    (hook,) = configuration["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["rules"][0]["resources"] == ["pods"] and hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["sideEffects"] == "NoneOnDryRun"
    selector = hook["namespaceSelector"]
    assert selector["matchLabels"] == {"otlp-operator/injection": "enabled"}
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["otlp-system"]} in selector[
        "matchExpressions"
    ]


def test_disabling_webhooks_removes_the_service_the_secret_and_the_operator_flags() -> None:
    objects = rendered("locked-down")
    assert {obj["kind"] for obj in objects} == {
        "Deployment",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
        "ClusterKopfPeering",
    }
    container = support.operator_container(objects)
    assert not [arg for arg in container["args"] if arg.startswith("--webhook")]
    assert [mount["name"] for mount in container["volumeMounts"]] == ["tmp"]


def test_the_pod_disruption_budget_keeps_one_replica_up_through_a_drain() -> None:
    budget = support.one(rendered("default"), "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1 and "maxUnavailable" not in budget
    loose = support.one(
        support.render({"podDisruptionBudget": {"minAvailable": None}}), "PodDisruptionBudget"
    )
    assert loose["spec"]["maxUnavailable"] == 1 and "minAvailable" not in loose["spec"]


def test_the_service_monitor_scrapes_the_agents_metrics_port() -> None:
    (monitor,) = [
        m
        for m in support.by_kind(rendered("service-monitor"), "ServiceMonitor")
        if m["metadata"]["name"].endswith("-agents")
    ]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "otlp-operator",
        "app.kubernetes.io/name": "otlp-agent",
    }
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert not support.by_kind(rendered("default"), "ServiceMonitor")


def test_log_level_maps_to_kopf_flags() -> None:
    assert "--verbose" in support.operator_container(rendered("single-namespace"))["args"]
    debug = support.operator_container(support.render({"logLevel": "debug"}))["args"]
    assert "--debug" in debug and "--verbose" not in debug


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_notes_render_and_name_the_watched_namespaces(scenario: str) -> None:
    notes = support.render_templates(support.CI_VALUES[scenario])["otlp-operator/templates/NOTES.txt"]
    assert "kubectl -n otlp-system rollout status deployment/otlp-otlp-operator" in notes
    watched = support.CI_VALUES[scenario].get("watchNamespaces")
    assert (", ".join(watched) if watched else "every namespace") in notes
