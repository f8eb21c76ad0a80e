"""A StatefulSet gateway scaled 3 → 2 → 3 under load loses no acknowledged item, on pods the test kubelet
runs as real agent processes.

The chain: the app sends to a front agent (mode deployment) whose exporter balances by trace id over the
gateway's pods (`pipelineRef` with `loadBalancing`: the headless Service, resolved by the agent) and is
acknowledged end to end; the gateway (mode statefulset, a claim per replica) acknowledges durably (on
disk). While the backend is down the gateway is scaled to 2: the front agent stops sending to the replica
going away and re-hashes its share over the other two, and that replica, unable to deliver its backlog
within its grace period, leaves it on its claim, which the StatefulSet keeps. The backend comes back, the
gateway is scaled to 3 again: the same ordinal gets the same claim and delivers what it kept. Every batch
the app got acknowledged reaches the backend.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.support.agent_cluster import (
    NAMESPACE,
    AgentCluster,
    Sender,
    agent_cluster,
    delivered_batches,
    metric,
    restarts,
)
from tests.support.otlp_backend import Fault, OtlpBackend

BACKEND = "otlp.backend.example"
SPANS = 20
FAST_RETRY = {"initialInterval": "200ms", "maxInterval": "1s"}


def pipelines() -> list[dict[str, Any]]:
    meta = {"namespace": NAMESPACE}
    gateway = {
        "mode": "statefulset",
        "replicas": 3,
        "lifecycle": {"shutdownGracePeriod": "4s"},
        "processors": {"batch": {"timeout": "50ms"}},
        "exporters": [
            {
                "name": "backend",
                "endpoint": f"https://{BACKEND}",
                "protocol": "http/protobuf",
                "queue": {"type": "persistent", "storageSize": "64Mi"},
                "delivery": "durable",
                "retry": FAST_RETRY,
            }
        ],
    }
    front = {
        "mode": "deployment",
        "replicas": 1,
        "processors": {"batch": {"timeout": "50ms"}},
        "exporters": [
            {
                "name": "gateways",
                "pipelineRef": {"name": "gateway"},
                "loadBalancing": {"routingKey": "traceID", "resolveInterval": "1s"},
                "delivery": "endToEnd",
                "retry": FAST_RETRY,
            }
        ],
    }
    return [
        {
            "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
            "kind": "OTLPPipeline",
            "metadata": {**meta, "name": name},
            "spec": spec,
        }
        for name, spec in (("gateway", gateway), ("front", front))
    ]


def ready(setup: AgentCluster, name: str, replicas: int) -> bool:
    condition = setup.condition(name, "Ready")
    return (
        condition.get("status") == "True"
        and setup.status(name).get("readyReplicas") == replicas
        and len(setup.pods(name, ready_only=True)) == replicas
    )


def balanced_over(setup: AgentCluster) -> float:
    (front,) = setup.pods("front", ready_only=True)
    return metric(front, "otlp_agent_loadbalancer_endpoints", exporter="gateways")


@pytest.mark.timeout(900)
def test_a_statefulset_gateway_scaled_3_2_3_under_load_loses_no_acknowledged_item(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    with OtlpBackend() as backend, agent_cluster(monkeypatch, tmp_path) as setup:
        host, port = backend.http_endpoint.removeprefix("http://").rsplit(":", 1)
        setup.kubelet.add_external(BACKEND, host, int(port))
        for document in pipelines():
            setup.apply(document)
        setup.wait(lambda: ready(setup, "gateway", 3) and ready(setup, "front", 1), "gateway and front", 300)
        assert [p["metadata"]["name"] for p in setup.pods("gateway")] == [
            f"gateway-agent-{n}" for n in range(3)
        ]
        claims = {c["metadata"]["name"] for c in setup.emulator.list("persistentvolumeclaims", NAMESPACE)}
        assert claims == {f"queue-gateway-agent-{n}" for n in range(3)}

        def front_ip() -> list[str]:
            return [p["status"]["podIP"] for p in setup.pods("front", ready_only=True)]

        with Sender(front_ip, spans=SPANS) as sender:
            setup.wait(
                lambda: len(sender.acknowledged) >= 10 and balanced_over(setup) == 3, "load over 3 gateways"
            )
            backend.default_fault = Fault.unavailable(retry_after=0.2)  # the backend goes down
            down = len(sender.acknowledged)
            setup.wait(
                lambda: len(sender.acknowledged) >= down + 10, "a backlog acknowledged on the gateways"
            )
            setup.cluster.kubectl("scale", "otlpp", "gateway", "-n", NAMESPACE, "--replicas=2")
            setup.wait(
                lambda: (
                    [
                        p["metadata"]["name"]
                        for p in setup.emulator.list("pods", NAMESPACE)
                        if p["metadata"]["name"].startswith("gateway-")
                    ]
                    == ["gateway-agent-0", "gateway-agent-1"]
                ),
                "gateway-agent-2 drained and gone",
                timeout=120,
            )
            setup.wait(lambda: balanced_over(setup) == 2, "the front agent balancing over 2", timeout=60)
            kept = {c["metadata"]["name"] for c in setup.emulator.list("persistentvolumeclaims", NAMESPACE)}
            assert "queue-gateway-agent-2" in kept, "the claim of the removed replica is kept"
            scaled_down = len(sender.acknowledged)
            setup.wait(lambda: len(sender.acknowledged) >= scaled_down + 10, "load on 2 gateways")
            backend.default_fault = None  # the backend is back
            setup.cluster.kubectl("scale", "otlpp", "gateway", "-n", NAMESPACE, "--replicas=3")
            setup.wait(lambda: ready(setup, "gateway", 3), "gateway-agent-2 back", timeout=180)
            setup.wait(
                lambda: balanced_over(setup) == 3, "the front agent balancing over 3 again", timeout=60
            )
            back = len(sender.acknowledged)
            setup.wait(lambda: len(sender.acknowledged) >= back + 10, "load on 3 gateways again")
        (returned,) = [p for p in setup.pods("gateway") if p["metadata"]["name"] == "gateway-agent-2"]
        recovered = metric(returned, "otlp_agent_queue_recovered_batches_total", exporter="backend")
        assert recovered > 0, "the returning ordinal found the backlog its predecessor left on the claim"
        wanted = sorted(sender.acknowledged)
        setup.wait(
            lambda: all(delivered_batches(backend).get(n, 0) >= SPANS for n in wanted),
            f"all {len(wanted)} acknowledged batches at the backend",
            timeout=180,
        )
        assert sum(restarts(p) for p in setup.pods("gateway")) == 0
        status = setup.status("gateway")
        assert (status["replicas"], status["readyReplicas"]) == (3, 3)
