"""The operator's /metrics on its probe port, as Prometheus scrapes it while the operator works: reconciles
and their errors by reason, pipelines by condition, webhook reviews by outcome, injections by result,
failed API calls; and docs/operations.md lists exactly the metric families it serves."""

from __future__ import annotations

import importlib.metadata
import pathlib
import platform
import re
import ssl
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support import metrics_docs
from tests.support.injection_objects import create, pipeline, pod, published
from tests.support.operator_harness import (
    Cluster,
    RunningOperator,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)


def scrape(operator: RunningOperator) -> dict[str, Any]:
    """Metric family name -> {frozenset(labels): value} (counters under their name without _total)."""
    url = f"http://127.0.0.1:{operator.ports.health_ports[-1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    found: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        samples = found.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[str, Any], sample: str, **labels: str) -> float:
    family = re.sub(r"_(total|count|sum|bucket)$", "", sample)
    return float(found.get(family, {}).get((sample, frozenset(labels.items())), 0.0))


def post_review(port: int, body: bytes) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(f"https://127.0.0.1:{port}/validate", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_the_operator_counts_what_it_does_and_the_docs_list_every_metric(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    assert cluster.emulator is not None, "API faults need the emulator"
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config) as operator:
        apply_yaml(cluster, pipeline("agent"))
        published(cluster, "agent")
        broken = pipeline("unresolved")
        broken["spec"]["exporters"] = [{"name": "up", "pipelineRef": {"name": "no-such-gateway"}}]
        apply_yaml(cluster, broken)
        cluster.wait_for(
            lambda: cluster.condition("unresolved", "Degraded").get("reason") == "ReferenceUnresolved",
            what="a Degraded pipeline",
        )
        invalid = pipeline("invalid", receivers={"otlp": {"grpc": {"port": 8888}}})  # the metrics port
        assert apply_yaml(cluster, invalid, check=False).returncode != 0, "the webhook denies it"
        assert post_review(operator.webhook_port or 0, b"{not json") == 400
        create(cluster, pod("web", inject="agent"))
        create(cluster, pod("lost", inject="no-such-pipeline"))
        cluster.emulator.fail_next("GET", r"/otlppipelines/no-such-gateway$", status=500, times=1)
        broken["spec"]["processors"] = {"batch": {"timeout": "1s"}}
        apply_yaml(cluster, broken)  # reconciled again: its target is read again, and fails
        # The API error is counted when the call fails, the reconcile error when that reconcile ends (and
        # the pipeline's condition after it): wait for all three, so the scrape shows a finished reconcile.
        found = cluster.wait_for(
            lambda: (
                (m := scrape(operator))
                and value(m, "otlp_operator_api_errors_total", method="GET", code="500")
                and value(m, "otlp_operator_reconcile_errors_total", reason="ApiError")
                and value(m, "otlp_operator_pipelines", condition="Degraded", status="True") == 1
                and value(m, "otlp_operator_reconcile_duration_seconds_count")
                == value(m, "otlp_operator_reconciles_total")
                and m
            ),
            what="the failed API call and its reconcile counted",
        )
        documented = metrics_docs.operator_documented()

    release = importlib.metadata.version("otlp-operator")
    assert value(found, "otlp_operator_build_info", version=release, python=platform.python_version()) == 1
    assert value(found, "otlp_operator_reconciles_total") >= 3
    assert value(found, "otlp_operator_reconcile_duration_seconds_count") == value(
        found, "otlp_operator_reconciles_total"
    )
    assert value(found, "otlp_operator_reconcile_errors_total", reason="ReferenceUnresolved") >= 1
    assert value(found, "otlp_operator_reconcile_errors_total", reason="ApiError") >= 1
    assert value(found, "otlp_operator_pipelines", condition="Degraded", status="True") == 1
    assert value(found, "otlp_operator_pipelines", condition="Ready", status="True") == 1
    assert value(found, "otlp_operator_webhook_requests_total", webhook="validate", outcome="denied") == 1
    assert value(found, "otlp_operator_webhook_requests_total", webhook="validate", outcome="malformed") == 1
    assert value(found, "otlp_operator_webhook_requests_total", webhook="validate", outcome="allowed") >= 2
    assert value(found, "otlp_operator_webhook_requests_total", webhook="inject", outcome="allowed") == 2
    assert (
        value(found, "otlp_operator_webhook_duration_seconds_count", webhook="inject", outcome="allowed") == 2
    )
    assert value(found, "otlp_operator_injections_total", result="injected", reason="Sidecar") == 1
    assert value(found, "otlp_operator_injections_total", result="skipped", reason="UnknownPipeline") == 1
    assert value(found, "process_resident_memory_bytes") > 0
    served = {name for name in found if name.startswith(("otlp_operator_", "process_"))}
    assert served - documented == set(), "served but not in docs/operations.md"
    assert documented - served == set(), "in docs/operations.md but not served"
