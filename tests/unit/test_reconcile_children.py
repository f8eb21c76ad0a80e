"""Which child events ask for a reconcile (child_events.ChildIndex), and the webhook's validation message."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import yaml
from otlp_operator import naming, validation
from otlp_operator.reconcile import child_events, merge

ROOT = pathlib.Path(__file__).resolve().parents[2]
GW = naming.PipelineKey("obs", "gw")


def child(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "obs"}, "spec": spec}


def live(desired: dict[str, Any], **status: Any) -> dict[str, Any]:
    served = merge.with_last_applied(desired)
    served["metadata"]["resourceVersion"] = "5"
    served["status"] = status
    return served


def index_with(*desired: dict[str, Any], workload: dict[str, Any] | None = None) -> child_events.ChildIndex:
    index = child_events.ChildIndex()
    index.remember(GW, list(desired))
    if workload is not None:
        index.observed(workload)
    return index


def test_our_own_writes_do_not_trigger_another_reconcile() -> None:
    service = child("Service", "gw-otlp", ports=[{"port": 4317}])
    index = index_with(service)
    assert index.owner_to_reconcile("ADDED", live(service)) is None
    assert index.owner_to_reconcile("MODIFIED", live(service)) is None


def test_a_deleted_or_edited_child_asks_for_its_pipeline() -> None:
    service = child("Service", "gw-otlp", ports=[{"port": 4317}])
    index = index_with(service)
    assert index.owner_to_reconcile("DELETED", live(service)) == GW
    edited = live(service)
    edited["spec"]["ports"] = [{"port": 9999}]
    assert index.owner_to_reconcile("MODIFIED", edited) == GW


def test_a_workload_status_change_asks_for_a_status_refresh_once() -> None:
    deployment = child("Deployment", "gw-agent", replicas=2)
    index = index_with(deployment, workload=live(deployment))
    assert index.owner_to_reconcile("MODIFIED", live(deployment)) is None
    ready = live(deployment, readyReplicas=2)
    assert index.owner_to_reconcile("MODIFIED", ready) == GW
    index.observed(ready)  # what the reconcile it triggered records
    assert index.owner_to_reconcile("MODIFIED", copy.deepcopy(ready)) is None


def test_a_workload_status_not_read_yet_counts_as_changed() -> None:
    deployment = child("Deployment", "gw-agent", replicas=2)
    index = index_with(deployment)  # remembered before applying: its status is not read yet
    assert index.owner_to_reconcile("MODIFIED", live(deployment, readyReplicas=1)) == GW
    assert index.owner_to_reconcile("MODIFIED", live(child("Service", "gw-otlp"))) is None


def test_unknown_children_and_forgotten_pipelines_are_left_to_the_drift_check() -> None:
    service = child("Service", "gw-otlp")
    index = index_with(service)
    assert index.owner_to_reconcile("DELETED", live(child("ConfigMap", "gw-config-old"))) is None
    assert index.pipelines() == [GW]
    index.forget(GW)
    assert index.owner_to_reconcile("DELETED", live(service)) is None and index.pipelines() == []


def test_remembering_again_replaces_the_previous_children() -> None:
    index = index_with(child("Deployment", "gw-agent"))
    index.remember(GW, [child("DaemonSet", "gw-agent")])
    assert index.owner_to_reconcile("DELETED", live(child("Deployment", "gw-agent"))) is None
    assert index.owner_to_reconcile("DELETED", live(child("DaemonSet", "gw-agent"))) == GW


def test_validation_reports_every_problem_with_its_field_path() -> None:
    body = yaml.safe_load((ROOT / "examples" / "gateway.yaml").read_text())
    assert validation.problems(body) == []
    body["spec"]["exporters"][0]["compression"] = "brotli"
    body["spec"]["receivers"]["otlp"]["http"]["port"] = 4317
    body["status"] = {"conditions": "ignored: status is the operator's"}
    found = validation.problems(body)
    assert len(found) == 2, found
    assert any(p.startswith("spec.exporters[0].compression:") for p in found)
    assert any("spec.receivers.otlp" in p and "4317" in p for p in found)
    message = validation.rejection(body, found)
    assert message.startswith("OTLPPipeline observability/gateway is invalid (2 problems):\n- spec.")


def test_workload_status_noise_does_not_ask_for_a_reconcile() -> None:
    deployment = child("Deployment", "gw-agent", replicas=2)
    index = index_with(deployment, workload=live(deployment, readyReplicas=2, conditions=[]))
    extra_field = live(
        deployment,
        readyReplicas=2,
        conditions=[],
        collisionCount=0,  # a field the pipeline's status does not use
    )
    assert index.owner_to_reconcile("MODIFIED", extra_field) is None
    stuck = live(
        deployment,
        readyReplicas=2,
        conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
    )
    assert index.owner_to_reconcile("MODIFIED", stuck) == GW
