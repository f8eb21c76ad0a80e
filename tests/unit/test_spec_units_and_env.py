"""Sizes as Kubernetes quantities, durations as Go durations, and `spec.env` with `valueFrom`, as a user
writes them in a pipeline: what is accepted, what is refused (with the field path and the bound in the
field's units), and what the agent container and the injected sidecar get."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from otlp_agent.api import loader, rules, spec
from otlp_operator import manifests
from otlp_operator.injection import transform

from tests.support import injection_inputs
from tests.support import manifest_cases as support
from tests.support.kube_emulator import schema as emulator_schema
from tests.support.spec_problems import problems
from tools import crd

EXPORTER = {"name": "backend", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}
SECRET_KEY = {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "backend-key", "key": "token"}}}
CONFIG_KEY = {
    "name": "REGION",
    "valueFrom": {"configMapKeyRef": {"name": "cluster-info", "key": "region", "optional": True}},
}
POD_IP = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
TEAM = {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}
MEMORY = {
    "name": "MEMORY_LIMIT_MIB",
    "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
}
EVERY_SOURCE = [SECRET_KEY, CONFIG_KEY, POD_IP, TEAM, MEMORY]


def with_exporter(**fields: Any) -> dict[str, Any]:
    return {"exporters": [{**EXPORTER, **fields}]}


def crd_problems(spec_body: dict[str, Any]) -> list[tuple[str, str]]:
    """What the API server's schema check says about `spec_body` (the emulator's validator)."""
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return emulator_schema.validate(spec_body, schema, "spec")


# -- sizes and durations ---------------------------------------------------------------------------------


def test_quantities_and_go_durations_are_accepted_in_a_pipeline() -> None:
    body = {
        "processors": {
            "memoryLimiter": {"limit": "1.5Gi", "spikeLimit": "256Mi"},
            "batch": {"maxBytes": "2e6"},
        },
        "exporters": [
            {**EXPORTER, "timeout": "1m30s", "retry": {"maxElapsed": "1h2m3.5s", "initialInterval": "500ms"}}
        ],
        "lifecycle": {"shutdownGracePeriod": "1m"},
    }
    parsed = rules.validate_spec(body)
    assert parsed.processors.memory_limiter.limit == 1536 * spec.MiB
    assert parsed.processors.batch.max_bytes == 2_000_000
    assert parsed.exporters[0].timeout == 90.0
    assert parsed.exporters[0].retry.max_elapsed == pytest.approx(3723.5)
    assert parsed.exporters[0].retry.initial_interval == 0.5
    assert crd_problems(body) == [], "the CRD schema admits what the agent accepts"


def test_bounds_are_kept_and_reported_in_the_fields_units() -> None:
    found = problems(
        {
            "processors": {"memoryLimiter": {"limit": "0.5Mi"}},
            "exporters": [{**EXPORTER, "timeout": "10m1s", "retry": {"initialInterval": "500us"}}],
        }
    )
    assert found["spec.processors.memoryLimiter.limit"] == "must be at least 1Mi"
    assert found["spec.exporters[0].timeout"] == "must be at most 10m"
    assert found["spec.exporters[0].retry.initialInterval"] == "must be at least 1ms"


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", "10 seconds"), ("timeout", "5"), ("timeout", "-1s"), ("timeout", "1d")],
)
def test_what_is_not_a_go_duration_is_refused_by_the_agent_and_by_the_crd(field: str, value: str) -> None:
    body = with_exporter(**{field: value})
    assert f"spec.exporters[0].{field}" in problems(body)
    assert [path for path, _ in crd_problems(body)] == [f"spec.exporters[0].{field}"]


@pytest.mark.parametrize("value", ["4MB", "-1Mi", "1.5.0Gi", "16 Mi"])
def test_what_is_not_a_quantity_is_refused_by_the_agent_and_by_the_crd(value: str) -> None:
    body = {"processors": {"batch": {"maxBytes": value}}, **with_exporter()}
    assert "spec.processors.batch.maxBytes" in problems(body)
    assert [path for path, _ in crd_problems(body)] == ["spec.processors.batch.maxBytes"]


def test_zero_durations_render_as_0s_and_others_in_go_syntax() -> None:
    dumped = spec.dump(rules.validate_spec(with_exporter(timeout="90s")))
    exporter = dumped["exporters"][0]
    assert exporter["queue"]["maxAge"] == "0s"
    assert exporter["timeout"] == "1m30s"
    assert exporter["retry"]["maxElapsed"] == "5m"


def test_container_resources_must_be_quantities() -> None:
    found = problems({"resources": {"requests": {"cpu": "half", "memory": "1.5Gi"}}, **with_exporter()})
    assert list(found) == ["spec.resources.requests.cpu"]


# -- env valueFrom ---------------------------------------------------------------------------------------


def test_env_takes_values_from_secrets_config_maps_and_the_pod() -> None:
    parsed = rules.validate_spec({"env": EVERY_SOURCE, **with_exporter()})
    assert [var.name for var in parsed.env] == [var["name"] for var in EVERY_SOURCE]
    assert crd_problems({"env": EVERY_SOURCE, **with_exporter()}) == []


def test_a_variable_with_both_a_value_and_a_source_is_refused() -> None:
    found = problems({"env": [{**SECRET_KEY, "value": "literal"}], **with_exporter()})
    assert found == {"spec.env[0]": "set value or valueFrom, not both"}


@pytest.mark.parametrize(
    "source",
    [{}, {"secretKeyRef": {"name": "s", "key": "k"}, "fieldRef": {"fieldPath": "metadata.name"}}],
)
def test_a_source_names_exactly_one_origin(source: dict[str, Any]) -> None:
    found = problems({"env": [{"name": "X", "valueFrom": source}], **with_exporter()})
    expected = "set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef"
    assert found == {"spec.env[0].valueFrom": expected}


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({"fieldRef": {"fieldPath": "spec.containers"}}, "spec.env[0].valueFrom.fieldRef.fieldPath"),
        ({"resourceFieldRef": {"resource": "limits.gpu"}}, "spec.env[0].valueFrom.resourceFieldRef.resource"),
        (
            {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "app"}},
            "spec.env[0].valueFrom.resourceFieldRef.containerName",
        ),
        ({"secretKeyRef": {"name": "Bad_Name", "key": "k"}}, "spec.env[0].valueFrom.secretKeyRef.name"),
        ({"configMapKeyRef": {"name": "c", "key": "a/b"}}, "spec.env[0].valueFrom.configMapKeyRef.key"),
    ],
)
def test_sources_kubernetes_would_refuse_are_refused_at_their_field(
    source: dict[str, Any], path: str
) -> None:
    assert list(problems({"env": [{"name": "X", "valueFrom": source}], **with_exporter()})) == [path]


def gateway(env: list[dict[str, Any]]) -> loader.OTLPPipeline:
    return loader.OTLPPipeline(
        "gw", "obs", spec.OTLPPipelineSpec.model_validate({"env": env, **with_exporter()})
    )


def test_the_agent_container_gets_every_source_as_kubernetes_writes_it() -> None:
    deployment = support.by_kind(manifests.build_all(gateway(EVERY_SOURCE), agent_image=support.IMAGE))[
        "Deployment"
    ]
    (agent,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry for entry in agent["env"]}
    assert env["API_KEY"] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "backend-key", "key": "token"}},
    }
    assert env["REGION"]["valueFrom"] == {
        "configMapKeyRef": {"name": "cluster-info", "key": "region", "optional": True}
    }
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP", "apiVersion": "v1"}}
    assert env["MEMORY_LIMIT_MIB"]["valueFrom"] == {
        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
    }
    for version in ("1.27", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_a_source_replaces_an_operator_variable_of_the_same_name() -> None:
    own = {"name": "OTLP_AGENT_NODE_NAME", "valueFrom": {"configMapKeyRef": {"name": "nodes", "key": "self"}}}
    deployment = support.by_kind(manifests.build_all(gateway([own]), agent_image=support.IMAGE))["Deployment"]
    (agent,) = deployment["spec"]["template"]["spec"]["containers"]
    named = [entry for entry in agent["env"] if entry["name"] == "OTLP_AGENT_NODE_NAME"]
    assert named == [{"name": "OTLP_AGENT_NODE_NAME", "valueFrom": own["valueFrom"]}]


def test_the_injected_sidecar_gets_the_same_sources() -> None:
    sidecar = injection_inputs.pipeline(env=EVERY_SOURCE)
    pod = transform.inject(
        injection_inputs.deployment_pod(),
        sidecar,
        cluster_version=injection_inputs.NEW,
        config_map=injection_inputs.CONFIG_MAP,
        image=injection_inputs.IMAGE,
    )
    (agent,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "otlp-agent"]
    sources = {entry["name"]: entry.get("valueFrom") for entry in agent["env"]}
    assert sources["API_KEY"] == {"secretKeyRef": {"name": "backend-key", "key": "token"}}
    assert sources["TEAM"] == {"fieldRef": {"fieldPath": "metadata.labels['team']", "apiVersion": "v1"}}
    pod["metadata"]["name"] = "web-1"
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
