"""Every example, applied with kubectl the way the docs tell users to: the API server stores it with the
CRD's defaults filled in, the validating webhook admits that stored form, and the operator reconciles each
pipeline to a valid configuration (ConfigValid True; a reference may wait for its target, never for a
spec problem). No example draws a warning from the API server or the webhook (kubectl prints them as
`Warning: ...`), such as a container too small for its memory limiter (`MemoryFits`)."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from tests.support.operator_harness import (
    EXAMPLES,
    Cluster,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

EXAMPLE_FILES = sorted(path.name for path in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_an_example_applied_with_kubectl_is_admitted_and_valid(
    cluster: Cluster, tmp_path: pathlib.Path, name: str
) -> None:
    documents = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text(encoding="utf-8")) if d]
    pipelines = [d for d in documents if d["kind"] == "OTLPPipeline"]
    assert pipelines, f"{name} has no OTLPPipeline"
    for namespace in {d["metadata"].get("namespace") for d in documents} - {None}:
        apply_yaml(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    config = config_for_tests(webhook=webhook_for_tests(tmp_path))
    with operator_running(config, args=("--standalone", "--all-namespaces")):
        cluster.wait_for_webhook()  # so the webhook reviews every apply
        applied = cluster.kubectl("apply", "-f", str(EXAMPLES / name), check=False)
        assert applied.returncode == 0, applied.stderr
        assert "Warning:" not in applied.stderr, applied.stderr
        for pipeline in pipelines:
            name_, namespace = pipeline["metadata"]["name"], pipeline["metadata"].get("namespace", "default")

            def config_valid(name_: str = name_, namespace: str = namespace) -> dict[str, object] | None:
                stored = cluster.get("otlppipelines", name_, namespace) or {}
                conditions = (stored.get("status") or {}).get("conditions") or []
                return next((c for c in conditions if c.get("type") == "ConfigValid"), None)

            verdict = cluster.wait_for(config_valid, timeout=30, what=f"{namespace}/{name_} reconciled")
            assert verdict["status"] == "True", (f"{namespace}/{name_}", verdict)
            stored = cluster.get("otlppipelines", name_, namespace) or {}
            memory = [c for c in stored["status"]["conditions"] if c["type"] == "MemoryFits"]
            assert [(c["status"], c["reason"]) for c in memory] == [("True", "Fits")], (name_, memory)
