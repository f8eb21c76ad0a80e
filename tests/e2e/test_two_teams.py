"""examples/two-teams.yaml and the operator: a referrer follows its target, and the tenancy guard holds.

The telemetry itself, through agents running from the pods the operator renders, is in
test_two_teams_cluster.py (the chart, the test kubelet and the OpenTelemetry SDK).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import kopf
import kopf.testing
import yaml
from otlp_operator import naming
from otlp_operator.edge import handlers, settings

from tests.support.operator_harness import (
    EXAMPLES,
    Cluster,
    apply_yaml,
    config_for_tests,
)

EXAMPLE = EXAMPLES / "two-teams.yaml"
NAMESPACES = ("observability", "team-a", "team-b")


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    found = [d for d in yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")) if d]
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in found}


@contextlib.contextmanager
def operator_watching(cluster: Cluster) -> Iterator[None]:
    """The real operator watching the example's three namespaces (created first, as a user would)."""
    for namespace in NAMESPACES[1:]:
        if cluster.emulator is not None:
            cluster.emulator.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        else:
            cluster.kubectl("create", "namespace", namespace, check=False)  # fine if it exists
    config = config_for_tests()
    kopf_settings = settings.kopf_settings(config)
    kopf_settings.watching.server_timeout = 10
    args = ["run", "--standalone", "--verbose", *(a for ns in NAMESPACES for a in ("--namespace", ns))]
    registry = handlers.build_registry(config)
    with kopf.testing.KopfRunner(args, registry=registry, settings=kopf_settings, timeout=30) as runner:
        try:
            yield
        finally:
            if cluster.emulator is None:  # a real cluster outlives the test: leave no team pipeline behind
                for namespace in NAMESPACES[1:]:
                    cluster.kubectl(
                        "delete", "otlppipelines", "--all", "-n", namespace, "--wait=false", check=False
                    )
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return (cluster.get("otlppipelines", name, namespace) or {}).get("status") or {}


def condition(cluster: Cluster, namespace: str, name: str, kind: str) -> tuple[str | None, str | None]:
    found = next(
        (c for c in status(cluster, namespace, name).get("conditions") or [] if c["type"] == kind), {}
    )
    return found.get("status"), found.get("reason")


def rendered_config(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The agent config the operator rendered for the pipeline's current config hash (None: not yet)."""
    config_hash = status(cluster, namespace, name).get("configHash")
    selector = f"{naming.PIPELINE_LABEL}={name}"
    for config_map in cluster.list("configmaps", selector, namespace):
        if config_hash and config_map["metadata"]["name"].endswith(f"-config-{config_hash}"):
            text: str = config_map["data"]["pipeline.yaml"]
            return text
    return None


def resolved(cluster: Cluster, namespace: str, name: str) -> bool:
    return condition(cluster, namespace, name, "ReferencesResolved") == ("True", "Resolved")


def reference_of(cluster: Cluster, namespace: str, name: str) -> str | None:
    found = status(cluster, namespace, name).get("references") or [{}]
    endpoint: str | None = found[0].get("endpoint")
    return endpoint


def test_a_referrer_follows_its_target_and_the_tenancy_guard_holds(cluster: Cluster) -> None:
    gateway = documents()[("observability", "team-a-gateway")]
    intruder = copy.deepcopy(documents()[("team-b", "apps")])
    intruder["metadata"]["name"] = "intruder"
    intruder["spec"]["exporters"][0]["pipelineRef"] = {"name": "team-a-gateway", "namespace": "observability"}
    with operator_watching(cluster):
        cluster.kubectl("apply", "-f", str(EXAMPLE))
        cluster.wait_for(lambda: resolved(cluster, "team-a", "apps"), what="team-a/apps resolved")

        # team-b points a pipeline at team-a's gateway: refused, and nothing is rendered for it.
        apply_yaml(cluster, intruder)
        cluster.wait_for(
            lambda: condition(cluster, "team-b", "intruder", "ReferencesResolved") == ("False", "NotAllowed"),
            what="the intruder refused",
        )
        assert condition(cluster, "team-b", "intruder", "Degraded") == ("True", "ReferenceUnresolved")
        assert cluster.list("configmaps", f"{naming.PIPELINE_LABEL}=intruder", "team-b") == []

        # The gateway moves its gRPC port: team-a's sidecar config follows without anyone touching it.
        moved = copy.deepcopy(gateway)
        moved["spec"]["receivers"] = {"otlp": {"grpc": {"port": 14317}}}
        apply_yaml(cluster, moved)
        new_endpoint = "team-a-gateway-otlp.observability.svc:14317"
        cluster.wait_for(lambda: reference_of(cluster, "team-a", "apps") == new_endpoint, what="new endpoint")
        text = cluster.wait_for(lambda: rendered_config(cluster, "team-a", "apps"), what="new config")
        assert yaml.safe_load(text)["spec"]["exporters"][0]["endpoint"] == new_endpoint

        # The gateway is deleted: team-a's pipeline says so and keeps its last good loader.
        last_hash = status(cluster, "team-a", "apps")["configHash"]
        cluster.kubectl("delete", "otlppipeline", "team-a-gateway", "-n", "observability")
        cluster.wait_for(
            lambda: condition(cluster, "team-a", "apps", "ReferencesResolved") == ("False", "TargetNotFound"),
            what="the missing target reported",
        )
        assert status(cluster, "team-a", "apps")["configHash"] == last_hash
        assert rendered_config(cluster, "team-a", "apps") == text
