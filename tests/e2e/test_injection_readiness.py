"""The pod webhook with the real operator: ready only when it can answer correctly, never answering from
empty caches, following a namespace's opt-in both ways, and refusing malformed reviews with a 400.

Reviews are sent as the API server sends them (HTTPS, the advertised CA) to the port the webhook server
reports; pods are created with the real kubectl through the emulator's admission chain.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import ssl
import urllib.error
import urllib.request
from typing import Any

from tests.support.injection_objects import INJECT, create, pipeline, pod, published
from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    RunningOperator,
    apply_yaml,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

NAMESPACES_LIST = r"^/api/v1/namespaces$"


def review(obj: dict[str, Any]) -> dict[str, Any]:
    request = {
        "uid": "review-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": obj["metadata"]["namespace"],
        "operation": "CREATE",
        "userInfo": {"username": "tester"},
        "object": obj,
        "dryRun": True,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def send(operator: RunningOperator, ca: pathlib.Path, body: Any) -> tuple[int, str]:
    url = f"https://127.0.0.1:{operator.webhook_port}/inject"
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return int(refused.code), refused.read().decode()


def injected(stored: dict[str, Any] | None) -> bool:
    return stored is not None and any(
        c["name"] == "otlp-agent" for c in stored["spec"].get("initContainers") or []
    )


def test_the_webhook_is_unready_and_answers_no_pod_review_until_its_caches_are_filled(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    assert cluster.emulator is not None, "needs the emulator's fault injection"
    apply_yaml(cluster, pipeline("agent"))
    cluster.emulator.fail_next("GET", NAMESPACES_LIST, status=503, times=1_000_000)  # no namespace list yet
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    asking = pod("web", inject="agent")
    with operator_running(config) as operator:
        cluster.wait_for(
            lambda: operator.probe("/healthz") == 200 and operator.webhook_port, what="probes and webhook"
        )
        assert operator.probe("/readyz") == 503
        status, text = send(operator, tmp_path / "ca.crt", review(asking))
        assert (status, text) == (503, "webhook inject is not ready yet\n")

        cluster.emulator.clear_faults()
        cluster.wait_for(
            lambda: operator.probe("/readyz") == 200, timeout=60, what="ready once the caches listed"
        )
        published(cluster, "agent")

        def injected_answer() -> dict[str, Any] | None:
            status, text = send(operator, tmp_path / "ca.crt", review(asking))
            assert status == 200, text
            answer: dict[str, Any] = json.loads(text)["response"]
            return answer if answer.get("patchType") == "JSONPatch" else None

        assert cluster.wait_for(injected_answer, timeout=60, what="the published config injected")["allowed"]


def test_removing_a_namespaces_opt_in_stops_injection(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    names = (f"plain-{n}" for n in itertools.count())
    with operator_running(config):
        apply_yaml(cluster, pipeline("agent"))
        published(cluster, "agent")
        cluster.kubectl("annotate", "namespace", NAMESPACE, f"{INJECT}=agent")

        def injects() -> bool:
            name = next(names)
            create(cluster, pod(name))
            return injected(cluster.get("pods", name))

        cluster.wait_for(injects, timeout=60, what="the namespace's opt-in to inject plain pods")
        cluster.kubectl("annotate", "namespace", NAMESPACE, f"{INJECT}-")
        cluster.wait_for(
            lambda: not injects(), timeout=60, what="injection to stop once the opt-in is removed"
        )
        for _ in range(3):  # and it stays stopped
            assert not injects()


def test_malformed_reviews_get_400_and_no_traceback(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config) as operator:
        cluster.wait_for(lambda: operator.probe("/readyz") == 200, what="ready")
        full = review(pod("web", inject="agent"))
        no_resource = {**full, "request": {k: v for k, v in full["request"].items() if k != "resource"}}
        for body, why in (
            ({}, "request is missing"),
            ({"kind": "AdmissionReview"}, "request is missing"),
            (no_resource, "request.resource is missing"),
        ):
            assert send(operator, tmp_path / "ca.crt", body) == (400, f"malformed AdmissionReview: {why}\n")
        assert send(operator, tmp_path / "ca.crt", full)[0] == 200
    assert "Traceback" not in operator.runner.output
