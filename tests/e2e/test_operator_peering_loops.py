"""Two operator replicas with kopf peering on the emulator: the one that led and was then paused by a
higher-priority peer stops its own loops (the drift check), which kopf itself never pauses; the new leader's
run instead. Each replica's reconciles are read from its own `/metrics`."""

from __future__ import annotations

import re
import urllib.request

import yaml
from otlp_operator.edge import settings

from tests.support.operator_harness import (
    NAMESPACE,
    ROOT,
    Cluster,
    RunningOperator,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
)

PEERING = "otlp-operator-e2e"
ARGS = ("--peering", PEERING, "--namespace", NAMESPACE)


def reconciles(port: int) -> float:
    """The replica's `otlp_operator_reconciles_total`, from its own metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(r"^otlp_operator_reconciles_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def health_port(operator: RunningOperator) -> int:
    """This replica's probe port: the first one its log handler saw (both replicas log to one logger)."""
    return operator.ports.health_ports[0]


def test_a_replica_paused_by_a_higher_priority_peer_stops_its_drift_check(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "charts" / "otlp-operator" / "crds" / "kopf-peerings.yaml"))
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(peering))
    older, newer = (
        config_for_tests(
            drift_interval=0.3, namespaces=(NAMESPACE,), peering=settings.Peering(PEERING, priority=priority)
        )
        for priority in (100, 200)
    )

    with operator_running(older, ARGS) as first:
        cluster.wait_for(lambda: first.ports.health_ports, what="the first replica's probes")
        first_port = health_port(first)
        apply_yaml(cluster, example("gateway.yaml"))
        cluster.wait_for(lambda: cluster.status("gateway").get("configHash"), timeout=30, what="reconciled")
        led = reconciles(first_port)
        cluster.wait_for(
            lambda: reconciles(first_port) >= led + 2, timeout=30, what="the leader's drift check running"
        )

        with operator_running(newer, ARGS) as second:
            cluster.wait_for(lambda: second.ports.health_ports, what="the second replica's probes")
            second_port = health_port(second)
            # The newcomer's priority is higher: it takes over, resumes the gateway and runs the drift check.
            cluster.wait_for(
                lambda: reconciles(second_port) >= 3, timeout=60, what="the new leader's drift check"
            )
            # Any pass of the first replica that was under way when it was paused has ended by now.
            settled = reconciles(second_port)
            cluster.wait_for(lambda: reconciles(second_port) >= settled + 2, timeout=30, what="more passes")
            paused_at = reconciles(first_port)
            later = reconciles(second_port)
            cluster.wait_for(
                lambda: reconciles(second_port) >= later + 4,
                timeout=30,
                what="several drift intervals of the new leader",
            )
            assert reconciles(first_port) == paused_at, "the paused replica kept reconciling"
