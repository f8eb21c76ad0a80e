"""Invariants over every rendered object of every example and scenario.

Golden files show *what* changed; these say what must hold whatever changes: every object is valid for
the oldest and newest Kubernetes we support, every name is a DNS label, every container is locked down
and probed, selectors select the pods, both Services reach the container ports, and the pods mount the
ConfigMap made for their template, which says the hash of the config it holds.
"""

from __future__ import annotations

import hashlib
from typing import Any

import kubernetes_validate
import pytest
from otlp_agent.api import spec
from otlp_operator import naming
from otlp_operator.manifests import agentconfig

from tests.support import manifest_cases as support

CASES = support.all_cases()
KUBERNETES_VERSIONS = ["1.27", kubernetes_validate.latest_version()]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def rendered(case: str) -> list[dict[str, Any]]:
    return support.build(CASES[case])


def pod_template(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    return workloads[0]["spec"]["template"] if workloads else None


def all_containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    template = pod_template(objects)
    if template is None:
        return []
    return [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_is_valid_for_the_kubernetes_api(case: str, version: str) -> None:
    for obj in rendered(case):
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    # Proves the validation above can fail: strict mode must refuse unknown fields.
    deployment = support.by_kind(rendered("scenario-gateway-minimal"))["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27", strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_name_is_a_dns_label_and_every_label_value_is_valid(case: str) -> None:
    for obj in rendered(case):
        assert naming.is_dns_label(obj["metadata"]["name"]), obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == CASES[case].namespace
        for value in obj["metadata"]["labels"].values():
            assert naming.is_label_value(value), value


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_is_owned_by_the_pipeline(case: str) -> None:
    for obj in rendered(case):
        (reference,) = obj["metadata"]["ownerReferences"]
        assert reference["uid"] == support.OWNER["metadata"]["uid"]
        assert reference["controller"] is True and reference["blockOwnerDeletion"] is True


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_container_is_locked_down_and_bounded(case: str) -> None:
    for container in all_containers(rendered(case)):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["privileged"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert security["capabilities"]["drop"] == ["ALL"]
        assert set(security["capabilities"].get("add", [])) <= {"CHOWN"}
        assert container["resources"]["requests"].keys() >= {"cpu", "memory"}
        assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_agent_container_runs_as_non_root_with_both_probes(case: str) -> None:
    template = pod_template(rendered(case))
    if template is None:
        assert CASES[case].spec.mode == spec.Mode.sidecar
        return
    (agent,) = template["spec"]["containers"]
    assert agent["securityContext"]["runAsNonRoot"] is True
    assert agent["securityContext"]["runAsUser"] != 0
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    port_names = {p["name"] for p in agent["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert agent[probe]["httpGet"]["path"] == path
        assert agent[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("case", sorted(CASES))
def test_selectors_select_the_pod_template(case: str) -> None:
    objects = rendered(case)
    template = pod_template(objects)
    if template is None:
        return
    pod_labels = template["metadata"]["labels"].items()
    kinds = support.by_kind(objects)
    workload = kinds.get("Deployment") or kinds.get("StatefulSet") or kinds["DaemonSet"]
    selectors = [workload["spec"]["selector"]["matchLabels"], kinds["Service"]["spec"]["selector"]]
    if support.HEADLESS in kinds:
        selectors.append(kinds[support.HEADLESS]["spec"]["selector"])
    if "PodDisruptionBudget" in kinds:
        selectors.append(kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    for selector in selectors:
        assert selector.items() <= pod_labels
        assert selector == naming.selector_labels(CASES[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_service_targets_exactly_the_container_ports(case: str) -> None:
    objects = rendered(case)
    template = pod_template(objects)
    if template is None:
        assert "Service" not in support.by_kind(objects)
        return
    (agent,) = template["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    kinds = support.by_kind(objects)
    for service in (kinds["Service"], kinds.get(support.HEADLESS)):
        if service is not None:
            assert {p["targetPort"]: p["port"] for p in service["spec"]["ports"]} == container_ports
    assert (support.HEADLESS in kinds) == (CASES[case].spec.mode in spec.GATEWAY_MODES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_pods_mount_the_config_map_made_for_their_template(case: str) -> None:
    objects = rendered(case)
    config_map = support.by_kind(objects)["ConfigMap"]
    text = config_map["data"][agentconfig.FILE_NAME]
    config_hash = hashlib.sha256(text.encode()).hexdigest()[:10]
    assert config_map["metadata"]["annotations"][naming.CONFIG_HASH_ANNOTATION] == config_hash
    assert "immutable" not in config_map, "rewritten in place when only the pipeline config changes"
    template = pod_template(objects)
    if template is None:
        return
    assert config_hash not in str(template), "the template holds nothing of the config"
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mount_has_a_volume_and_only_the_queue_and_tmp_are_writable(case: str) -> None:
    objects = rendered(case)
    template = pod_template(objects)
    if template is None:
        return
    volumes = {v["name"] for v in template["spec"]["volumes"]}
    for workload in (o for o in objects if o["kind"] == "StatefulSet"):
        volumes |= {claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])}
    for container in all_containers(objects):
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes
            assert mount.get("readOnly", False) or mount["mountPath"] in {"/tmp", "/var/lib/otlp-agent"}
