"""Validation of the scaling features, with the field path a user edits: statefulset gateways (replicas,
autoscaling, one storage class for the claim every replica gets) and load-balancing exporters."""

from __future__ import annotations

from typing import Any

from otlp_agent.api import rules, spec

from tests.support.spec_problems import GRPC, all_problems, problems


def persistent(name: str, storage_class: str | None = None) -> dict[str, Any]:
    queue: dict[str, Any] = {"type": "persistent", "storageSize": "1Gi"}
    if storage_class is not None:
        queue["storageClassName"] = storage_class
    return {**GRPC, "name": name, "queue": queue, "delivery": "durable"}


def test_a_statefulset_gateway_may_scale_and_autoscale_and_keep_durable_queues() -> None:
    parsed = rules.validate_spec(
        {
            "mode": "statefulset",
            "replicas": 3,
            "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
            "exporters": [persistent("a", "fast"), persistent("b"), persistent("c", "fast")],
        }
    )
    assert parsed.mode == spec.Mode.statefulset and parsed.replicas == 3


def test_the_persistent_queues_of_a_statefulset_ask_for_one_storage_class() -> None:
    body = {"mode": "statefulset", "exporters": [persistent("a", "fast"), persistent("b", "slow")]}
    assert problems(body) == {
        "spec.exporters[1].queue.storageClassName": "the persistent queues of a statefulset share one volume "
        "per replica: use the storage class of exporters[0] ('fast') or none"
    }


def test_a_persistent_queue_of_a_statefulset_still_needs_its_size() -> None:
    exporter = {**GRPC, "queue": {"type": "persistent"}}
    assert problems({"mode": "statefulset", "exporters": [exporter]}) == {
        "spec.exporters[0].queue.storageSize": "a persistent queue needs storageSize for its volume"
    }


def test_load_balancing_by_trace_id_with_a_resource_fallback_is_valid() -> None:
    exporter = {**GRPC, "loadBalancing": {"resourceAttributes": ["service.name"], "resolveInterval": "30s"}}
    parsed = rules.validate_spec({"exporters": [exporter]})
    balancing = parsed.exporters[0].load_balancing
    assert balancing is not None and balancing.routing_key == spec.RoutingKey.trace_id
    assert balancing.resolve_interval == 30.0
    also = {
        "name": "gw",
        "endpoints": ["gw-a:4317", "gw-b:4317"],
        "loadBalancing": {"routingKey": "roundRobin"},
    }
    rules.validate_spec({"exporters": [also]})


def test_load_balancing_mistakes_are_reported_at_their_field() -> None:
    exporters = [
        {"name": "print", "debug": {}, "loadBalancing": {}},
        {**GRPC, "name": "rr", "loadBalancing": {"routingKey": "roundRobin", "resourceAttributes": ["a"]}},
        {
            **GRPC,
            "name": "twice",
            "loadBalancing": {"routingKey": "resource", "resourceAttributes": ["a", "a"]},
        },
        {**GRPC, "name": "empty", "loadBalancing": {"resourceAttributes": [""]}},
    ]
    found = all_problems({"exporters": exporters})
    assert found == [
        (
            "spec.exporters[0].loadBalancing",
            "only for exporters that send (the debug exporter has no address)",
        ),
        (
            "spec.exporters[1].loadBalancing.resourceAttributes",
            "only with routingKey traceID or resource (roundRobin sends whole batches in turn)",
        ),
        ("spec.exporters[2].loadBalancing.resourceAttributes", "lists an attribute twice"),
        ("spec.exporters[3].loadBalancing.resourceAttributes[0]", "must not be empty"),
    ]


def test_an_unknown_routing_key_and_a_too_short_resolve_interval_are_field_errors() -> None:
    exporter = {**GRPC, "loadBalancing": {"routingKey": "spanID", "resolveInterval": "100ms"}}
    found = dict(all_problems({"exporters": [exporter]}))
    assert set(found) == {
        "spec.exporters[0].loadBalancing.routingKey",
        "spec.exporters[0].loadBalancing.resolveInterval",
    }
    assert found["spec.exporters[0].loadBalancing.resolveInterval"] == "must be at least 1s"
