"""examples/two-teams.yaml on a cluster, every hop real: `helm install` the chart; the test kubelet runs the
chart's operator replicas and then every agent pod the operator renders (gateways, the node agent) and
the sidecar the injection webhook adds to each team's app pod; the official OpenTelemetry SDK, playing
the app, sends to the sidecar at the address the pod's own env gives it (`OTEL_EXPORTER_OTLP_ENDPOINT`;
a pod's localhost is its pod IP here, see tests/support/kubelet/README.md); the sidecar forwards to its
team's gateway through the Service name the operator resolved; the gateway exports over HTTPS to the
team's public backend name, which the kubelet's "outside world" maps to a recording backend.

Then: each team's backend has exactly its team's data; the team-a gateway's pods are changed (their CPU
request) and roll out while team-a keeps sending, and every item the SDK got acknowledged arrives; the
gateway is switched to durable delivery (a persistent queue on its volume claim) and, while team A's
backend is down, its pod is SIGKILLed after acknowledging a backlog: the replacement pod finds it on the
claim and delivers all of it; `kubectl delete -f` removes every pipeline and everything it ran.
"""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import pytest
import yaml

from tests.support.chart_install import CHART, NAMESPACE, RELEASE, VALUES, Installed
from tests.support.injection_objects import INJECT
from tests.support.otlp_backend import Fault, OtlpBackend, sdk_samples

EXAMPLE = CHART.parents[1] / "examples" / "two-teams.yaml"
TEAMS = ("team-a", "team-b")
NAMESPACES = ("observability", *TEAMS)
BACKENDS = {"team-a": "otlp.team-a.example.com", "team-b": "otlp.team-b.example.com"}
PLATFORM = "otlp.platform.example.com"
SPANS, LOGS = 30, 12


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")) if d]


def ready(setup: Installed, namespace: str, name: str) -> bool:
    obj = setup.kube.emulator.get("otlppipelines", name, namespace) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def app_pod(team: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "checkout",
            "namespace": team,
            "annotations": {INJECT: "apps"},
            "labels": {"app": "checkout"},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.test/checkout:1"}]},
    }


def pod_ready(setup: Installed, namespace: str, name: str) -> dict[str, Any] | None:
    pod = setup.kube.emulator.get("pods", name, namespace) or {}
    conditions = (pod.get("status") or {}).get("conditions") or []
    return pod if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def sdk_endpoint(pod: dict[str, Any]) -> str:
    """Where the app's SDK sends: the pod's OTEL_EXPORTER_OTLP_ENDPOINT, its localhost being the pod IP."""
    (app,) = [c for c in pod["spec"]["containers"] if c["name"] == "app"]
    env = {e["name"]: e.get("value") for e in app.get("env") or []}
    return str(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).replace("127.0.0.1", pod["status"]["podIP"])


def send(team: str, endpoint: str, batch: int) -> tuple[str, str]:
    resource = {"service.name": f"{team}-checkout", "k8s.namespace.name": team, "batch": batch}
    spans, _, logs = sdk_samples.exporters("http", endpoint, timeout=10)
    try:
        return (
            spans.export(sdk_samples.make_spans(SPANS, resource)).name,
            logs.export(sdk_samples.make_logs(LOGS, resource)).name,
        )
    finally:
        spans.shutdown()
        logs.shutdown()


def exported_spans(pod: dict[str, Any]) -> float:
    """What the pod's sidecar has exported (acknowledged by the gateway), from its /metrics."""
    url = f"http://{pod['status']['podIP']}:8888/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("otelcol_exporter_sent_spans_total{")
    )


def gateway_pods(setup: Installed, name: str) -> set[str]:
    found = setup.kube.emulator.list("pods", "observability")
    return {p["metadata"]["name"] for p in found if p["metadata"]["name"].startswith(f"{name}-agent-")}


def teams_of(backend: OtlpBackend) -> set[str]:
    found = {str(resource["k8s.namespace.name"]) for resource, _, _ in backend.spans()}
    return found | {str(resource["k8s.namespace.name"]) for resource, _, _ in backend.log_records()}


@pytest.mark.timeout(600)  # a whole cluster's processes start on a shared 2-core machine
def test_two_teams_on_a_cluster_each_get_their_own_data_through_sidecars_and_gateways(
    chart_cluster: Installed,
) -> None:
    setup = chart_cluster
    with OtlpBackend() as backend_a, OtlpBackend() as backend_b, OtlpBackend() as platform:
        backends = {"team-a": backend_a, "team-b": backend_b}
        externals = {BACKENDS[t]: backends[t] for t in TEAMS} | {PLATFORM: platform}
        assert setup.kubelet is not None
        for name, backend in externals.items():
            host, port = backend.http_endpoint.removeprefix("http://").rsplit(":", 1)
            setup.kubelet.add_external(name, host, int(port))
        setup.helm.install(CHART, RELEASE, VALUES)
        for namespace in NAMESPACES:
            setup.kubectl(
                "create",
                "-f",
                "-",
                input=yaml.safe_dump(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                ),
            )
        setup.wait(
            lambda: (
                (setup.kube.emulator.get("deployments", "otlp-operator", NAMESPACE) or {})
                .get("status", {})
                .get("readyReplicas")
                == 2
            ),
            "the operator replicas",
        )
        setup.kubectl("apply", "-f", str(EXAMPLE))
        for document in documents():
            meta = document["metadata"]
            setup.wait(
                lambda meta=meta: ready(setup, meta["namespace"], meta["name"]),
                f"{meta['namespace']}/{meta['name']} Ready",
                timeout=120,
            )

        for team in TEAMS:
            setup.kubectl("create", "-f", "-", input=yaml.safe_dump(app_pod(team)))
        pods = {
            team: setup.wait(
                lambda team=team: pod_ready(setup, team, "checkout"),
                f"{team}'s app pod with its sidecar",
                timeout=90,
            )
            for team in TEAMS
        }
        for team, pod in pods.items():
            assert [c["name"] for c in pod["spec"]["initContainers"]] == ["otlp-agent"], (
                "the sidecar was injected"
            )
            assert send(team, sdk_endpoint(pod), 0) == ("SUCCESS", "SUCCESS")
        for team, backend in backends.items():
            backend.wait_for_items("traces", SPANS, timeout=60)
            backend.wait_for_items("logs", LOGS, timeout=60)
            assert teams_of(backend) == {team}, f"{team}'s backend got another team's data"
            assert (len(backend.spans()), len(backend.log_records())) == (SPANS, LOGS)

        # The team-a gateway changes while team-a keeps sending: its pods roll, nothing acknowledged is lost.
        acknowledged = [0]
        stop = threading.Event()

        def keep_sending() -> None:
            batch = 1
            while not stop.is_set() and batch < 200:
                if send("team-a", sdk_endpoint(pods["team-a"]), batch)[0] == "SUCCESS":
                    acknowledged[0] += SPANS
                batch += 1

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            gateway = next(d for d in documents() if d["metadata"]["name"] == "team-a-gateway")
            before = {
                p["metadata"]["name"]
                for p in setup.kube.list("pods", "observability")
                if p["metadata"]["name"].startswith("team-a-gateway-agent")
            }
            # A pod-level change (a config-only one is reloaded in place: test_scaling_hot_config.py).
            gateway["spec"]["resources"] = {"requests": {"cpu": "150m", "memory": "128Mi"}}
            setup.apply(gateway)

            def rolled() -> bool:
                now = {
                    p["metadata"]["name"]
                    for p in setup.kube.emulator.list("pods", "observability")
                    if p["metadata"]["name"].startswith("team-a-gateway-agent")
                }
                return bool(now) and not (now & before) and ready(setup, "observability", "team-a-gateway")

            setup.wait(rolled, "the team-a gateway to roll out", timeout=120)
        finally:
            stop.set()
            sender.join(timeout=120)
        assert acknowledged[0] > SPANS
        backend_a.wait_for_items("traces", SPANS + acknowledged[0], timeout=60)
        assert teams_of(backend_a) == {"team-a"} and teams_of(backend_b) == {"team-b"}

        # Durable delivery: what the gateway acknowledged survives its SIGKILL, on its volume claim.
        durable = next(d for d in documents() if d["metadata"]["name"] == "team-a-gateway")
        durable["spec"]["replicas"] = 1
        durable["spec"]["exporters"][0].update(
            delivery="durable", queue={"type": "persistent", "storageSize": "1Gi"}
        )
        before = gateway_pods(setup, "team-a-gateway")
        setup.apply(durable)
        setup.wait(
            lambda: (
                gateway_pods(setup, "team-a-gateway").isdisjoint(before)
                and len(gateway_pods(setup, "team-a-gateway")) == 1
                and ready(setup, "observability", "team-a-gateway")
            ),
            "the durable team-a gateway",
            timeout=120,
        )
        delivered = len(backend_a.spans())
        backend_a.default_fault = Fault.unavailable(retry_after=0.2)  # team A's backend goes down
        exported = exported_spans(pods["team-a"])
        for batch in range(1000, 1003):
            assert send("team-a", sdk_endpoint(pods["team-a"]), batch)[0] == "SUCCESS"
        setup.wait(
            lambda: exported_spans(pods["team-a"]) >= exported + 3 * SPANS, "the gateway to acknowledge"
        )
        (gateway_pod,) = gateway_pods(setup, "team-a-gateway")
        setup.kubelet.crash("observability", gateway_pod)  # SIGKILL: nothing is flushed
        backend_a.default_fault = None  # the backend is back; the replacement pod finds the backlog
        backend_a.wait_for_items("traces", delivered + 3 * SPANS, timeout=120)
        batches = {resource.get("batch") for resource, _, _ in backend_a.spans()}
        assert {1000, 1001, 1002} <= batches

        setup.kubectl("delete", "-f", str(EXAMPLE))
        for team in TEAMS:
            setup.kubectl("delete", "pod", "checkout", "-n", team)

        def gone() -> bool:
            left = [
                (kind, obj["metadata"]["name"])
                for namespace in NAMESPACES
                for kind in ("otlppipelines", "deployments", "daemonsets", "services", "configmaps", "pods")
                for obj in setup.kube.emulator.list(kind, namespace)
                if kind != "configmaps" or obj["metadata"]["name"] != "kube-root-ca.crt"
            ]
            return not left

        setup.wait(gone, "every pipeline and everything it ran to be gone", timeout=60)
        setup.wait(
            lambda: not [k for k in setup.kubelet.runners if not k.startswith(f"{NAMESPACE}/")],
            "the agent processes to stop",
        )  # type: ignore[union-attr]
