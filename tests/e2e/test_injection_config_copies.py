"""A sidecar pipeline's config copies in the other namespaces it allows are written by its reconcile: a
namespace created after the pipeline gets its copy at the next drift check (until then its pods are
admitted without an agent, rather than mounting a ConfigMap that does not exist), a change of a pipeline it
references rewrites the copies as it does its own ConfigMap, and the clean-up command of docs/injection.md
deletes the old copies and keeps the one pods are injected with, and only this pipeline's. A same-named
pipeline of another team never shares a ConfigMap with it: each team's sidecars run their own team's config.

The real operator (kopf, its webhooks) against the emulator, objects written and read with the real kubectl.
"""

from __future__ import annotations

import pathlib

from tests.support.injection_objects import create, pipeline, pod, published
from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

LATE = "late-team"
COPY_LABEL = "telemetry.otlp-operator.io/config-of"
COPY_NAMESPACE_LABEL = "telemetry.otlp-operator.io/config-of-namespace"
FILE = "pipeline.yaml"


def namespace(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def data_of(cluster: Cluster, config_map: str, where: str = NAMESPACE) -> str | None:
    found = cluster.get("configmaps", config_map, where)
    return None if found is None else str((found.get("data") or {}).get(FILE))


def copied_to(cluster: Cluster, name: str) -> list[str]:
    return list((cluster.status(name).get("configRollout") or {}).get("copiedTo") or [])


def published_in(cluster: Cluster, name: str, where: str) -> str | None:
    status = (cluster.get("otlppipelines", name, where) or {}).get("status") or {}
    return (status.get("configRollout") or {}).get("configMap")


def mounted(cluster: Cluster, pod_name: str, where: str) -> list[str]:
    found = cluster.get("pods", pod_name, where) or {}
    return [v["configMap"]["name"] for v in found["spec"].get("volumes") or [] if "configMap" in v]


def test_a_pod_of_a_namespace_without_its_copy_yet_is_admitted_without_an_agent(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    # The drift check (60 s) does not come within the test: the namespace has no copy.
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, pipeline("shared", injection={"allowed": {"namespaces": [LATE]}}))
        name = published(cluster, "shared")
        assert copied_to(cluster, "shared") == []  # the namespace did not exist
        apply_yaml(cluster, namespace(LATE))
        done = create(cluster, pod("early", inject=f"{NAMESPACE}/shared", namespace=LATE))
        assert f"(NotPublished): the config of pipeline {NAMESPACE}/shared is not copied" in done.stderr
        early = cluster.get("pods", "early", LATE) or {}
        assert "initContainers" not in early["spec"] and "volumes" not in early["spec"]  # it can start
        assert data_of(cluster, name, LATE) is None


def test_a_namespace_created_after_the_pipeline_gets_its_copy_at_the_next_drift_check(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True, drift_interval=1.0)
    with operator_running(config):
        apply_yaml(cluster, pipeline("shared", injection={"allowed": {"namespaces": [LATE]}}))
        name = published(cluster, "shared")
        apply_yaml(cluster, namespace(LATE))
        cluster.wait_for(
            lambda: data_of(cluster, name, LATE) == data_of(cluster, name),
            timeout=30,
            what="the copy in the namespace created later",
        )
        cluster.wait_for(lambda: copied_to(cluster, "shared") == [LATE], what="the copy in the status")
        create(cluster, pod("guest", inject=f"{NAMESPACE}/shared", namespace=LATE))
        assert mounted(cluster, "guest", LATE) == [name]  # and it exists in the pod's namespace (above)


def test_a_same_named_pipeline_of_another_team_never_changes_what_a_teams_sidecars_run(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    # Team LATE runs its sidecar pipeline "app"; the harness's team names its own "app" too and serves
    # pods of LATE. The copy must not be LATE's ConfigMap: each team's pods get their own team's config.
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    apply_yaml(cluster, namespace(LATE))
    with operator_running(config, args=("--standalone", "--namespace", NAMESPACE, "--namespace", LATE)):
        theirs = pipeline("app")
        theirs["metadata"]["namespace"] = LATE
        theirs["spec"]["exporters"][0]["endpoint"] = "late-backend.late-team.svc:4317"
        apply_yaml(cluster, theirs)
        own = cluster.wait_for(lambda: published_in(cluster, "app", LATE), what="LATE's app published")
        apply_yaml(cluster, pipeline("app", injection={"allowed": {"namespaces": [LATE]}}))
        copy = published(cluster, "app")
        cluster.wait_for(lambda: copied_to(cluster, "app") == [LATE], what="the copy in the status")
        assert copy != own
        assert data_of(cluster, copy, LATE) == data_of(cluster, copy)
        cluster.wait_for(lambda: data_of(cluster, own, LATE), what="team LATE's own ConfigMap")
        assert "late-backend" in str(data_of(cluster, own, LATE))
        assert "late-backend" not in str(data_of(cluster, copy, LATE))
        create(cluster, pod("mine", inject=f"{LATE}/app", namespace=LATE))
        create(cluster, pod("guest", inject=f"{NAMESPACE}/app", namespace=LATE))
        assert (mounted(cluster, "mine", LATE), mounted(cluster, "guest", LATE)) == ([own], [copy])


def test_a_change_of_a_referenced_gateway_rewrites_the_copies_too(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    # The drift check (60 s) is far beyond the waits: the referrer's reconcile alone must do it.
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, namespace(LATE))
        gateway = pipeline("gw", mode="deployment")
        apply_yaml(cluster, gateway)
        published(cluster, "gw")
        side = pipeline("side", injection={"allowed": {"namespaces": [LATE]}})
        side["spec"]["exporters"] = [{"name": "up", "pipelineRef": {"name": "gw"}}]
        apply_yaml(cluster, side)
        name = published(cluster, "side")
        cluster.wait_for(lambda: data_of(cluster, name, LATE), what="the copy")
        gateway["spec"]["receivers"] = {"otlp": {"grpc": {"port": 5317}}}
        apply_yaml(cluster, gateway)
        cluster.wait_for(lambda: ":5317" in (data_of(cluster, name) or ""), timeout=30, what="own ConfigMap")
        cluster.wait_for(
            lambda: data_of(cluster, name, LATE) == data_of(cluster, name),
            timeout=30,
            what="the copy to follow the gateway's new port",
        )


def test_the_documented_clean_up_deletes_old_copies_and_keeps_the_published_one(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config):
        apply_yaml(cluster, namespace(LATE))
        shared = pipeline("shared", injection={"allowed": {"namespaces": [LATE]}})
        apply_yaml(cluster, shared)
        old = published(cluster, "shared")
        cluster.wait_for(lambda: data_of(cluster, old, LATE), what="the first copy")
        shared["spec"]["telemetry"] = {"port": 9999}  # pod-level: another ConfigMap
        apply_yaml(cluster, shared)
        new = cluster.wait_for(
            lambda: (lambda found: found if found != old else None)(published(cluster, "shared")),
            what="the pod-level change published",
        )
        cluster.wait_for(lambda: data_of(cluster, new, LATE), what="the second copy")
        assert data_of(cluster, old, LATE) is not None  # old copies stay until deleted

        # docs/injection.md, "Who may use a pipeline": the published name, then every other copy.
        live = cluster.kubectl(
            "get", "otlpp", "shared", "-n", NAMESPACE, "-o", "jsonpath={.status.configRollout.configMap}"
        ).stdout.strip()
        assert live == new
        cluster.kubectl(
            "delete", "configmap", "-n", LATE,
            "-l", f"{COPY_LABEL}=shared,{COPY_NAMESPACE_LABEL}={NAMESPACE}",
            "--field-selector", f"metadata.name!={live}",
        )  # fmt: skip
        assert data_of(cluster, old, LATE) is None
        assert data_of(cluster, new, LATE) == data_of(cluster, new)
