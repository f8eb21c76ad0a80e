"""The pipeline with routes and enrichment: what each exporter is handed, what the client is told, what is
counted. Exporters are real ExporterRuntimes (not started) whose `accept` is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter.lane import Room
from otlp_agent.otlp import errors, wire
from otlp_agent.pipeline.intake import Intake
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.recording_intake import EXPORTERS, TEAM_A, make, teams


async def test_without_routes_every_exporter_is_handed_the_very_bytes_object_received() -> None:
    pipeline, handed = make({})
    data = teams("team-a", "team-b")
    answer = await pipeline.consume(Signal.traces, data, 4)
    assert answer.rejected == 0
    for name in ("a", "b", "shared"):
        [(signal, got, items)] = handed[name]
        assert (signal, got, items) == (Signal.traces, data, 4)
        assert got is data


async def test_routed_data_goes_only_where_its_route_says_and_is_counted_per_route() -> None:
    pipeline, handed = make(
        {
            "routes": {
                "rules": [{"name": "team-a", "match": [TEAM_A], "exporters": ["a"]}],
                "default": ["shared"],
            }
        }
    )
    answer = await pipeline.consume(Signal.traces, teams("team-a", "team-b", "team-a"), 6)
    assert answer.rejected == 0
    assert [items for _, _, items in handed["a"]] == [4]
    assert handed["b"] == []
    assert [items for _, _, items in handed["shared"]] == [2]
    metric = pipeline.metrics.value
    assert metric("otlp_agent_routed_items_total", route="team-a", signal="traces") == 4
    assert metric("otlp_agent_routed_items_total", route="_default", signal="traces") == 2


async def test_unrouted_data_is_reported_to_the_client_as_partial_success_and_counted() -> None:
    pipeline, handed = make(
        {"routes": {"rules": [{"name": "team-a", "match": [TEAM_A], "exporters": ["a"]}]}}
    )
    answer = await pipeline.consume(Signal.traces, teams("team-a", "team-b", None), 6)
    assert answer.rejected == 4
    assert answer.message == "4 spans matched no route and this pipeline has no default route; dropped"
    assert [items for _, _, items in handed["a"]] == [2]
    assert pipeline.metrics.value("otlp_agent_unrouted_items_total", signal="traces") == 4


async def test_a_full_queue_at_one_routed_exporter_refuses_the_request_but_keeps_the_other_part() -> None:
    pipeline, handed = make(
        {"routes": {"rules": [{"name": "team-a", "match": [TEAM_A], "exporters": ["a"]}], "default": ["b"]}}
    )
    [b] = [e for e in pipeline.exporters if e.name == "b"]
    b.room_for = lambda size, items: Room.full  # type: ignore[method-assign]
    with pytest.raises(errors.ReceiveError) as refused:
        await pipeline.consume(Signal.traces, teams("team-a", "other"), 4)
    assert refused.value.reason == "queue_full" and refused.value.retry_after is not None
    assert [items for _, _, items in handed["a"]] == [2], "team-a's part is not held hostage by b"
    assert handed["b"] == []
    assert pipeline.metrics.value("otlp_agent_routed_items_total", route="team-a", signal="traces") == 0


async def test_enrichment_comes_first_so_routes_can_match_what_it_adds() -> None:
    body = {
        "mode": "sidecar",
        "processors": {"k8sAttributes": {"clusterName": "prod", "overwrite": []}},
        "routes": {
            "rules": [{"name": "team-a", "match": [TEAM_A], "exporters": ["a"]}],
            "default": ["shared"],
        },
    }
    pipeline, handed = make(body, environ={"OTLP_AGENT_POD_NAMESPACE": "team-a"})
    await pipeline.consume(Signal.traces, teams(None, "team-b"), 4)
    [(_, to_a, items)] = handed["a"]
    assert items == 2
    [entry] = wire.parse(Signal.traces, to_a).resource_spans
    assert {kv.key: kv.value.string_value for kv in entry.resource.attributes} == {
        "r": "0",
        "k8s.namespace.name": "team-a",
        "k8s.cluster.name": "prod",
    }


async def test_in_a_sidecar_a_client_claiming_another_namespace_is_routed_as_its_own() -> None:
    body = {
        "mode": "sidecar",
        "processors": {"k8sAttributes": {}},  # overwrite: the pod's identity, by default in sidecar mode
        "routes": {
            "rules": [
                {"name": "team-a", "match": [TEAM_A], "exporters": ["a"]},
                {"name": "team-b", "match": [{**TEAM_A, "equals": "team-b"}], "exporters": ["b"]},
            ]
        },
    }
    pipeline, handed = make(body, environ={"OTLP_AGENT_POD_NAMESPACE": "team-a", "OTLP_AGENT_POD_NAME": "p"})
    await pipeline.consume(Signal.traces, teams("team-b", "team-a", None), 6)
    assert handed["b"] == [], "the forged namespace reached nobody else's exporter"
    [(_, to_a, items)] = handed["a"]
    assert items == 6
    for entry in wire.parse(Signal.traces, to_a).resource_spans:
        namespaces = [
            kv.value.string_value for kv in entry.resource.attributes if kv.key == "k8s.namespace.name"
        ]
        assert namespaces == ["team-a"], "exactly one value, the pod's own"


async def test_tenant_rules_apply_only_to_requests_authenticated_as_that_tenant() -> None:
    auth = {"tenants": [{"name": t, "bearerTokenSecret": {"name": t, "key": "token"}} for t in ("ta", "tb")]}
    body = {
        "receivers": {"otlp": {"grpc": {"auth": auth}}},
        "routes": {
            "rules": [
                {"name": "from-a", "tenants": ["ta"], "exporters": ["a"]},
                {"name": "from-b", "tenants": ["tb"], "match": [TEAM_A], "exporters": ["b"]},
            ],
            "default": ["shared"],
        },
    }
    pipeline, handed = make(body)
    await pipeline.consume(Signal.traces, teams("team-b"), 2, tenant="ta")
    await pipeline.consume(Signal.traces, teams("team-a"), 2, tenant="tb")
    await pipeline.consume(Signal.traces, teams("team-a"), 2, tenant="tc")
    await pipeline.consume(Signal.traces, teams("team-a"), 2)
    assert [items for _, _, items in handed["a"]] == [2], "whatever ta's data says"
    assert [items for _, _, items in handed["b"]] == [2], "tb's rule, and its match, hold"
    assert [items for _, _, items in handed["shared"]] == [2, 2], "other tenants and anonymous: default"


async def test_a_pipeline_built_again_on_reload_counts_into_the_same_route_metrics() -> None:
    metrics = AgentMetrics()
    body = spec.OTLPPipelineSpec.model_validate({"exporters": EXPORTERS, "routes": {"default": ["a"]}})
    Intake(body, metrics)
    reloaded = Intake(body, metrics)  # registering the route metrics twice would raise here
    for exporter in reloaded.exporters:
        exporter.accept = _accept_nothing  # type: ignore[method-assign]
    await reloaded.consume(Signal.traces, teams("x"), 2)
    assert metrics.value("otlp_agent_routed_items_total", route="_default", signal="traces") == 2


async def _accept_nothing(signal: Signal, data: bytes, items: int) -> list[Any]:
    return []
