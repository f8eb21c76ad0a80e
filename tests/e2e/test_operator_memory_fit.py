"""A container too small for its agent, applied with the real kubectl: the webhook admits it with a warning
that kubectl prints (`Warning: ...` on stderr), the status says it in the MemoryFits condition with a
Warning Event, and raising the limit clears both; a sidecar pipeline is checked against its injected
container."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

from tests.support.operator_harness import (
    NAMESPACE,
    Cluster,
    apply_yaml,
    config_for_tests,
    example,
    operator_running,
    webhook_for_tests,
)

TOO_LOW = (
    "Warning: spec.resources.limits.memory (384Mi) is below spec.processors.memoryLimiter.limit (192Mi) "
    "+ 256Mi of agent overhead (448Mi): the container can be OOM-killed before the limiter refuses data "
    "(see docs/agent.md#memory)"
)


def memory_fits_once(cluster: Cluster, name: str, field: str, value: str) -> dict[str, Any]:
    """The MemoryFits condition, once its `field` reads `value`."""

    def reached() -> dict[str, Any] | None:
        condition = cluster.condition(name, "MemoryFits")
        return condition if condition.get(field) == value else None

    return cluster.wait_for(reached, timeout=30, what=f"MemoryFits {field} {value}")


def test_a_container_below_the_limiter_plus_overhead_is_admitted_with_a_warning_and_reported(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    node_agent = example("node-agent.yaml")
    small = copy.deepcopy(node_agent)
    small["spec"]["resources"]["limits"]["memory"] = "384Mi"
    with operator_running(config_for_tests(webhook=webhook_for_tests(tmp_path))):
        cluster.wait_for_webhook()
        applied = apply_yaml(cluster, small, check=False)
        assert applied.returncode == 0, applied.stderr  # a warning, not a denial
        assert TOO_LOW in applied.stderr.splitlines()
        stored = cluster.get("otlppipelines", "node-agent")
        assert stored is not None and stored["spec"]["resources"]["limits"]["memory"] == "384Mi"

        low = memory_fits_once(cluster, "node-agent", "reason", "MemoryLimitTooLow")
        assert (low["status"], low["message"]) == ("False", TOO_LOW.removeprefix("Warning: "))
        assert cluster.condition("node-agent", "ConfigValid")["status"] == "True"
        # The Event follows the status write (a reconcile that read the older status may post it again, as
        # it would any transition).
        warned = cluster.wait_for(
            lambda: [e for e in cluster.events("node-agent") if e["reason"] == "MemoryLimitTooLow"],
            timeout=30,
            what="the Warning Event",
        )
        assert {(e["type"], e["message"]) for e in warned} == {
            ("Warning", f"MemoryFits is False: {low['message']}")
        }

        fixed = apply_yaml(cluster, node_agent, check=False)  # the example: 448Mi
        assert fixed.returncode == 0 and "Warning:" not in fixed.stderr, fixed.stderr
        fits = memory_fits_once(cluster, "node-agent", "status", "True")
        assert fits["reason"] == "Fits"
        assert fits["message"] == (
            "spec.resources.limits.memory (448Mi) leaves at least 256Mi above "
            "spec.processors.memoryLimiter.limit (192Mi)"
        )

        again = apply_yaml(cluster, small, check=False)  # an update is admitted too, with the warning
        assert again.returncode == 0 and TOO_LOW in again.stderr.splitlines(), again.stderr


def test_a_sidecar_pipeline_is_checked_against_its_injected_container(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    sidecar = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "big-sidecar", "namespace": NAMESPACE},
        "spec": {
            "mode": "sidecar",
            "resources": {"limits": {"memory": "4Gi"}},  # not the sidecar's: spec.injection.resources is
            "processors": {"memoryLimiter": {"limit": "512Mi", "spikeLimit": "64Mi"}},
            "exporters": [{"name": "out", "endpoint": "https://otlp.example.com"}],
        },
    }
    with operator_running(config_for_tests(webhook=webhook_for_tests(tmp_path))):
        cluster.wait_for_webhook()
        applied = apply_yaml(cluster, sidecar, check=False)
        assert applied.returncode == 0, applied.stderr
        assert (
            "Warning: spec.injection.resources.limits.memory (512Mi) is below "
            "spec.processors.memoryLimiter.limit (512Mi) + 256Mi of agent overhead (768Mi)"
        ) in applied.stderr
        sidecar["spec"]["injection"] = {"resources": {"limits": {"memory": "768Mi"}}}
        raised = apply_yaml(cluster, sidecar, check=False)
        assert raised.returncode == 0 and "Warning:" not in raised.stderr, raised.stderr
