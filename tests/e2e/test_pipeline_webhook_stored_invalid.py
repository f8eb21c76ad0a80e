"""A pipeline stored invalid while the validating webhook was off (or judged by an older operator's rules),
then the webhook comes on: with the real kubectl, updates that leave the spec alone (a label, kopf's own
bookkeeping) are admitted with the problems as warnings, and updates that change the spec to something
still invalid are denied."""

from __future__ import annotations

import copy
import json
import pathlib

from tests.support.operator_harness import (
    Cluster,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
    webhook_for_tests,
)

PROBLEM = "spec.receivers.otlp.http.port: port 4317 is already used by receivers.otlp.grpc.port"
LAST_HANDLED = "telemetry.otlp-operator.io/last-handled-configuration"


def handled_labels(cluster: Cluster) -> dict[str, str]:
    """The labels kopf recorded as handled on the gateway (its bookkeeping annotation)."""
    stored = cluster.get("otlppipelines", "gateway") or {}
    recorded = (stored.get("metadata", {}).get("annotations") or {}).get(LAST_HANDLED)
    return dict(json.loads(recorded).get("metadata", {}).get("labels") or {}) if recorded else {}


def test_metadata_updates_of_a_stored_invalid_pipeline_are_admitted_with_warnings(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    invalid = example("gateway.yaml")
    invalid["spec"]["receivers"]["otlp"]["http"]["port"] = 4317
    with operator_running(config_for_tests()):  # no webhook: the invalid spec is stored
        apply_yaml(cluster, invalid)
        cluster.wait_for(
            lambda: cluster.condition("gateway", "ConfigValid").get("reason") == "InvalidSpec",
            what="the invalid spec reported",
        )

    with operator_running(config_for_tests(webhook=webhook_for_tests(tmp_path))):
        cluster.wait_for_webhook()
        labelled = cluster.kubectl("label", "otlpp", "gateway", "-n", "observability", "team=a", check=False)
        assert labelled.returncode == 0, labelled.stderr
        warnings = [line for line in labelled.stderr.splitlines() if line.startswith("Warning:")]
        assert warnings == [
            "Warning: OTLPPipeline observability/gateway has an invalid spec (kept as it is; fix it to "
            f"change it): {PROBLEM}"
        ], labelled.stderr
        annotated = cluster.kubectl("annotate", "otlpp", "gateway", "-n", "observability", "a=b", check=False)
        assert annotated.returncode == 0, annotated.stderr

        # kopf handles the label change and records it in its own annotation: its patch is admitted.
        cluster.wait_for(
            lambda: handled_labels(cluster).get("team") == "a", timeout=30, what="kopf's bookkeeping patch"
        )

        if cluster.emulator is not None:  # every write so far, kopf's and kubectl's, was admitted
            pipeline_patches = [
                r.status
                for r in cluster.emulator.requests
                if r.method == "PATCH" and r.path.endswith("/otlppipelines/gateway")
            ]
            assert len(pipeline_patches) >= 3 and 422 not in pipeline_patches, pipeline_patches

        still_invalid = copy.deepcopy(invalid)
        still_invalid["spec"]["exporters"][0]["protocol"] = "grpc"  # zstd over gRPC: another problem
        changed = apply_yaml(cluster, still_invalid, check=False)
        assert changed.returncode != 0
        assert "denied the request" in changed.stderr and PROBLEM in changed.stderr, changed.stderr
        stored = cluster.get("otlppipelines", "gateway") or {}
        assert stored["spec"]["exporters"][0].get("protocol") != "grpc"  # the denied spec was not stored
