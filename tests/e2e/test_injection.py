"""Sidecar injection end to end: the real operator (kopf, its managed mutating webhook over TLS) and pods
created with the real kubectl through the API server's admission chain; the stored pods are asserted.

Runs against the emulator, or a real cluster with OTLP_E2E_KUBECONFIG (see
tests/support/operator_harness.py)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from otlp_agent.api import spec

from tests.support.injection_objects import INJECT, create, pipeline, pod, published
from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

CONFIG_MAP = "telemetry.otlp-operator.io/agent-config"
OTHER_NAMESPACE = "shop"


def env_of(stored: dict[str, Any], container: str = "app") -> dict[str, Any]:
    (found,) = [c for c in stored["spec"]["containers"] if c["name"] == container]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in found.get("env") or []}


def warnings_about(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Warning Events saying a pod got no agent."""
    # core/v1 Events, as posted (the emulator stores events.k8s.io/v1 ones apart; kubectl may ask for those)
    raw = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/events").stdout
    found = json.loads(raw)["items"]
    said = ("no OTLP agent injected", "asked for this pipeline and got no agent")
    return [e for e in found if e.get("type") == "Warning" and any(t in e.get("message", "") for t in said)]


def test_a_pod_asking_for_a_sidecar_pipeline_is_stored_with_the_agent_its_config_and_the_sdk_wiring(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, pipeline("agent"))
        apply_yaml(cluster, pipeline("gateway", mode="deployment"))
        config_map = published(cluster, "agent")
        published(cluster, "gateway")

        create(cluster, pod("web", inject="agent"))
        stored = cluster.get("pods", "web")
        assert stored is not None
        (agent,) = stored["spec"]["initContainers"]
        assert (agent["name"], agent["restartPolicy"]) == ("otlp-agent", "Always")  # a native sidecar
        assert agent["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
        volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
        assert volumes["otlp-agent-config"]["configMap"]["name"] == config_map
        env = env_of(stored)
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
        assert env["OTEL_SERVICE_NAME"] == "web"
        assert "k8s.pod.name=$(OTEL_K8S_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]
        assert stored["metadata"]["annotations"][CONFIG_MAP] == config_map

        # a gateway as the target: env wiring to its Service, no container.
        create(cluster, pod("api", inject=f"{NAMESPACE}/gateway"))
        api = cluster.get("pods", "api")
        assert api is not None and "initContainers" not in api["spec"]
        assert [c["name"] for c in api["spec"]["containers"]] == ["app"]
        assert env_of(api)["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://gateway-otlp.{NAMESPACE}.svc:4318"

        # a pod created from an injected pod's manifest is not injected twice.
        copied = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-copy", "namespace": NAMESPACE}}
        copied["metadata"].update({k: stored["metadata"][k] for k in ("labels", "annotations")})
        copied["spec"] = {k: stored["spec"][k] for k in ("initContainers", "containers", "volumes")}
        create(cluster, copied)
        again = cluster.get("pods", "web-copy")
        assert again is not None
        assert again["spec"]["initContainers"] == stored["spec"]["initContainers"]
        assert env_of(again) == env


def test_the_namespace_annotation_injects_its_pods_unless_a_pod_opts_out(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, pipeline("agent"))
        published(cluster, "agent")
        cluster.kubectl("annotate", "namespace", NAMESPACE, f"{INJECT}=true")
        create(cluster, pod("inherits"))
        create(cluster, pod("opts-out", inject="false"))
        inherits, opted_out = cluster.get("pods", "inherits"), cluster.get("pods", "opts-out")
        assert inherits is not None and opted_out is not None
        assert [c["name"] for c in inherits["spec"]["initContainers"]] == ["otlp-agent"]
        assert "initContainers" not in opted_out["spec"] and env_of(opted_out) == {}

        # a pipeline allowing another namespace publishes its config there, so its pods can mount it.
        apply_yaml(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NAMESPACE}})
        apply_yaml(cluster, pipeline("shared", injection={"allowed": {"namespaces": [OTHER_NAMESPACE]}}))
        copy_name = published(cluster, "shared")
        copied = cluster.wait_for(lambda: cluster.get("configmaps", copy_name, OTHER_NAMESPACE), what="copy")
        assert copied["data"] == (cluster.get("configmaps", copy_name) or {})["data"]
        # its config edited: the copy is rewritten in place, so sidecars there reload it too
        edited = pipeline(
            "shared",
            injection={"allowed": {"namespaces": [OTHER_NAMESPACE]}},
            processors={"batch": {"timeout": "1s"}},
        )
        apply_yaml(cluster, edited)
        cluster.wait_for(
            lambda: (
                "timeout: 1s"
                in (cluster.get("configmaps", copy_name, OTHER_NAMESPACE) or {})
                .get("data", {})
                .get("pipeline.yaml", "")
            ),
            what="the copy rewritten",
        )
        assert published(cluster, "shared") == copy_name
        create(cluster, pod("guest", inject=f"{NAMESPACE}/shared", namespace=OTHER_NAMESPACE))
        guest = cluster.get("pods", "guest", OTHER_NAMESPACE)
        assert guest is not None
        volumes = {v["name"]: v for v in guest["spec"]["volumes"]}
        assert volumes["otlp-agent-config"]["configMap"]["name"] == copy_name


def test_pods_that_cannot_get_their_agent_are_admitted_unchanged_with_a_warning_and_an_event(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NAMESPACE}})
        apply_yaml(cluster, pipeline("one"))
        apply_yaml(cluster, pipeline("two"))
        published(cluster, "one")
        published(cluster, "two")

        unknown = create(cluster, pod("unknown", inject="missing"))
        assert "no OTLP agent injected (UnknownPipeline)" in unknown.stderr  # kubectl prints the warning
        ambiguous = create(cluster, pod("ambiguous", inject="true"))
        assert "AmbiguousPipeline" in ambiguous.stderr
        create(cluster, pod("outsider", inject=f"{NAMESPACE}/one", namespace=OTHER_NAMESPACE))
        for name, namespace in (
            ("unknown", NAMESPACE),
            ("ambiguous", NAMESPACE),
            ("outsider", OTHER_NAMESPACE),
        ):
            stored = cluster.get("pods", name, namespace)
            assert stored is not None and "initContainers" not in stored["spec"]
            assert "env" not in stored["spec"]["containers"][0]

        cluster.wait_for(lambda: len(warnings_about(cluster, NAMESPACE)) >= 2, what="warning events")
        reasons = {e["message"].split(")")[0] for e in warnings_about(cluster, NAMESPACE)}
        assert reasons >= {
            "no OTLP agent injected (UnknownPipeline",
            "no OTLP agent injected (AmbiguousPipeline",
        }
        outsider = cluster.wait_for(lambda: warnings_about(cluster, OTHER_NAMESPACE), what="NotAllowed event")
        assert outsider[0]["reason"] == "NotAllowed" and outsider[0]["involvedObject"]["name"] == "outsider"
        about_pipeline = cluster.wait_for(
            lambda: [
                e for e in warnings_about(cluster, NAMESPACE) if e["involvedObject"]["kind"] == spec.KIND
            ],
            what="event on the pipeline",
        )
        assert about_pipeline[0]["involvedObject"]["name"] == "one"
        assert f"Pod {OTHER_NAMESPACE}/outsider asked for this pipeline" in about_pipeline[0]["message"]
