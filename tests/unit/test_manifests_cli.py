"""`otlp-operator render` run as users run it: the installed console script, in a subprocess."""

from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Any

import yaml

from tests.support import manifest_cases as support

SCRIPT = support.ROOT / ".venv" / "bin" / "otlp-operator"
GATEWAY = support.ROOT / "examples" / "gateway.yaml"


def render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "OTLP_OPERATOR_AGENT_IMAGE"}
    return subprocess.run(
        [str(SCRIPT), "render", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
    )


def images(stdout: str) -> set[str]:
    documents = list(yaml.safe_load_all(stdout))
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    return {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_render_prints_every_child_as_a_yaml_stream() -> None:
    result = render(str(GATEWAY), "--agent-image", "registry.test/agent:7")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in documents] == [
        "ConfigMap",
        "ServiceAccount",
        "Service",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ]
    assert result.stdout.startswith("---\n")
    assert images(result.stdout) == {"registry.test/agent:7"}
    assert all("ownerReferences" not in d["metadata"] for d in documents)


def test_a_container_too_small_for_the_limiter_is_rendered_with_a_warning(tmp_path: pathlib.Path) -> None:
    tight = tmp_path / "tight.yaml"
    manifest = yaml.safe_load(GATEWAY.read_text(encoding="utf-8"))
    manifest["spec"]["resources"] = {"limits": {"memory": "300Mi"}}
    manifest["spec"]["processors"] = {"memoryLimiter": {"limit": "100Mi"}}
    tight.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    result = render(str(tight))
    assert result.returncode == 0, "a warning, as the webhook admits it: not a refusal"
    assert "Deployment" in [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert result.stderr.splitlines() == [
        "warning: observability/gateway: spec.resources.limits.memory (300Mi) is below "
        "spec.processors.memoryLimiter.limit (100Mi) + 256Mi of agent overhead (356Mi): the container can "
        "be OOM-killed before the limiter refuses data (see docs/agent.md#memory)"
    ]
    assert render(str(GATEWAY)).stderr == "", "the example fits"


def test_the_default_image_is_this_release_unless_the_environment_overrides_it() -> None:
    assert images(render(str(GATEWAY)).stdout) == {"ghcr.io/otlp-operator/otlp-agent:0.1.0"}
    overridden = render(str(GATEWAY), env={"OTLP_OPERATOR_AGENT_IMAGE": "mirror.test/agent:x"})
    assert images(overridden.stdout) == {"mirror.test/agent:x"}


def test_an_invalid_file_prints_every_problem_and_exits_2(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\nmetadata: {name: x}\n"
        "spec:\n  replicas: -1\n  exporters: [{name: a, endpoint: 'x:1', compression: zstd}]\n",
        encoding="utf-8",
    )
    result = render(str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    # The field error does not hide the cross-field one: both are reported in one run.
    assert len(lines) == 2, result.stderr
    assert "spec.replicas" in lines[0] and "spec.exporters[0].compression" in lines[1]
    assert "Traceback" not in result.stderr


def test_a_file_with_several_problems_gets_one_line_each(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\nmetadata: {name: x}\n"
        "spec:\n  exporters: [{name: a, endpoint: 'x:1', compression: zstd}, {name: a, debug: {}}]\n",
        encoding="utf-8",
    )
    result = render(str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert any("compression" in line for line in lines) and any("duplicate" in line for line in lines)


def test_a_missing_file_is_a_one_line_error() -> None:
    result = render("/nonexistent/pipeline.yaml")
    assert result.returncode == 2
    assert "cannot read file" in result.stderr and "Traceback" not in result.stderr


TWO_TEAMS = support.ROOT / "examples" / "two-teams.yaml"
HEADER = "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\n"


def config_of(documents: list[Any], namespace: str, prefix: str) -> Any:
    (found,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap"
        and d["metadata"]["namespace"] == namespace
        and d["metadata"]["name"].startswith(prefix)
    ]
    return yaml.safe_load(found["data"]["pipeline.yaml"])


def test_a_multi_document_file_renders_every_pipeline_with_its_references_resolved() -> None:
    result = render(str(TWO_TEAMS))
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    workloads = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in documents
        if d["kind"] in ("Deployment", "DaemonSet")
    }
    assert ("observability", "team-a-gateway-agent") in workloads and (
        "observability",
        "node-agent-agent",
    ) in workloads
    # What the operator deploys: the Service endpoint, in-cluster plaintext gRPC, no reference left.
    [exporter] = config_of(documents, "team-a", "apps-")["spec"]["exporters"][:1]
    assert exporter["endpoint"] == "team-a-gateway-otlp.observability.svc:4317"
    assert exporter["tls"]["insecure"] is True and "pipelineRef" not in exporter


def test_an_unresolved_reference_is_named_and_its_pipeline_is_not_printed(tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text(
        HEADER
        + "metadata: {name: gw, namespace: obs}\nspec: {exporters: [{name: e, debug: {}}]}\n---\n"
        + HEADER
        + "metadata: {name: app, namespace: team}\n"
        "spec: {exporters: [{name: up, pipelineRef: {name: gw, namespace: obs}}]}\n---\n"
        + HEADER
        + "metadata: {name: lost, namespace: obs}\n"
        "spec: {exporters: [{name: up, pipelineRef: {name: nowhere}}]}\n",
        encoding="utf-8",
    )
    result = render(str(bundle))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "team/app: exporter up -> obs/gw" in lines[0] and "(NotAllowed)" in lines[0]
    assert "obs/lost: exporter up -> obs/nowhere" in lines[1] and "(TargetNotFound)" in lines[1]
    printed = {d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout) if d}
    assert "gw-agent" in printed and not any(n.startswith(("app-", "lost-")) for n in printed)
