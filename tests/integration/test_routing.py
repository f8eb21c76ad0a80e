"""Routes and Kubernetes enrichment end to end: the official OpenTelemetry SDK exporters send to a real agent
on loopback, which routes each team's data to its own backend and enriches resources on the way."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend, sdk_samples
from tests.support.trace_requests import TRACE_METHOD


def team(name: str) -> dict[str, str]:
    return {"service.name": f"{name}-app", "k8s.namespace.name": name}


def to(backend: OtlpBackend, name: str, protocol: str) -> dict[str, Any]:
    endpoint = backend.grpc_direct_endpoint if protocol == "grpc" else backend.http_endpoint
    return {"name": name, "endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}


def two_teams(a: OtlpBackend, b: OtlpBackend) -> dict[str, Any]:
    """team-a -> backend a (gRPC), team-b and team-b2 -> backend b (HTTP); no default."""
    return {
        "processors": {"batch": {"timeout": "20ms"}},
        "exporters": [to(a, "a", "grpc"), to(b, "b", "http/protobuf")],
        "routes": {
            "rules": [
                {
                    "name": "team-a",
                    "match": [{"attribute": "k8s.namespace.name", "equals": "team-a"}],
                    "exporters": ["a"],
                },
                {
                    "name": "team-b",
                    "match": [{"attribute": "k8s.namespace.name", "regex": "team-b[0-9]*"}],
                    "exporters": ["b"],
                },
            ]
        },
    }


async def sdk_send(
    agent: RunningAgent, transport: str, resource: dict[str, str], spans: int, logs: int
) -> None:
    """Spans, logs and metrics of one app, through the SDK's own exporters; each export must succeed."""
    endpoint = agent.grpc_endpoint if transport == "grpc" else agent.http_endpoint
    span_exporter, metric_exporter, log_exporter = sdk_samples.exporters(transport, endpoint)
    try:
        results = await asyncio.gather(
            asyncio.to_thread(span_exporter.export, sdk_samples.make_spans(spans, resource)),
            asyncio.to_thread(metric_exporter.export, sdk_samples.make_metrics(resource)),
            asyncio.to_thread(log_exporter.export, sdk_samples.make_logs(logs, resource)),
        )
    finally:
        for exporter in (span_exporter, metric_exporter, log_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert [result.name for result in results] == ["SUCCESS"] * 3


def namespaces(backend: OtlpBackend) -> dict[str, set[str]]:
    """k8s.namespace.name of every item the backend accepted, per signal."""
    return {
        "traces": {resource.get("k8s.namespace.name") for resource, _, _ in backend.spans()},
        "metrics": {resource.get("k8s.namespace.name") for resource, _, _ in backend.data_points()},
        "logs": {resource.get("k8s.namespace.name") for resource, _, _ in backend.log_records()},
    }


async def test_each_teams_data_lands_only_in_its_backend() -> None:
    async with OtlpBackend() as a, OtlpBackend() as b:
        async with agent_running(two_teams(a, b)) as agent:
            await asyncio.gather(
                sdk_send(agent, "grpc", team("team-a"), spans=20, logs=5),
                sdk_send(agent, "http", team("team-b"), spans=30, logs=7),
                sdk_send(agent, "grpc", team("team-b2"), spans=4, logs=1),
            )
            await a.wait_for_items_async("traces", 20)
            await b.wait_for_items_async("traces", 34)
        # The agent has shut down and flushed everything: nothing more can arrive.
        assert (a.accepted_items("traces"), a.accepted_items("logs"), a.accepted_items("metrics")) == (
            20,
            5,
            3,
        )
        assert (b.accepted_items("traces"), b.accepted_items("logs"), b.accepted_items("metrics")) == (
            34,
            8,
            6,
        )
        assert namespaces(a) == {signal: {"team-a"} for signal in ("traces", "metrics", "logs")}
        assert namespaces(b) == {signal: {"team-b", "team-b2"} for signal in ("traces", "metrics", "logs")}
        assert agent.metric("otlp_agent_routed_items_total", route="team-a", signal="traces") == 20
        assert agent.metric("otlp_agent_routed_items_total", route="team-b", signal="logs") == 8


def mixed_request(**spans_per_team: int) -> bytes:
    """One request with a resource entry per team: how a gateway receives batches from a node agent."""
    return b"".join(
        encode_spans(sdk_samples.make_spans(count, team(name))).SerializeToString()
        for name, count in spans_per_team.items()
    )


async def post_traces(agent: RunningAgent, body: bytes) -> trace_service_pb2.ExportTraceServiceResponse:
    answer = await agent.post_traces(body)
    assert answer.status == 200
    return trace_service_pb2.ExportTraceServiceResponse.FromString(answer.body)


async def grpc_traces(agent: RunningAgent, body: bytes) -> trace_service_pb2.ExportTraceServiceResponse:
    async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
        answer = await channel.unary_unary(TRACE_METHOD)(body, timeout=5)
    return trace_service_pb2.ExportTraceServiceResponse.FromString(answer)


@pytest.mark.parametrize("receive", ["http", "grpc"])
async def test_a_mixed_request_is_split_and_unrouted_data_is_reported_to_the_client(receive: str) -> None:
    async with OtlpBackend() as a, OtlpBackend() as b:
        async with agent_running(two_teams(a, b)) as agent:
            body = mixed_request(**{"team-a": 6, "nobody": 5, "team-b": 8})
            answer = await (post_traces if receive == "http" else grpc_traces)(agent, body)
            assert answer.partial_success.rejected_spans == 5
            assert "5 spans matched no route" in answer.partial_success.error_message
            await a.wait_for_items_async("traces", 6)
            await b.wait_for_items_async("traces", 8)
        assert (a.accepted_items("traces"), b.accepted_items("traces")) == (6, 8)
        assert namespaces(a)["traces"] == {"team-a"}
        assert namespaces(b)["traces"] == {"team-b"}
        assert agent.metric("otlp_agent_unrouted_items_total", signal="traces") == 5
        assert (
            agent.metric(
                "otlp_agent_refused_items_total", signal="traces", transport=receive, reason="partial"
            )
            == 5
        )
        assert agent.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport=receive) == 14


async def test_a_node_agent_adds_its_node_and_the_cluster_but_never_its_own_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTLP_AGENT_NODE_NAME", "node-7")
    monkeypatch.setenv("OTLP_AGENT_POD_NAME", "otlp-agent-x7k2p")
    monkeypatch.setenv("OTLP_AGENT_POD_NAMESPACE", "observability")
    async with OtlpBackend() as backend:
        spec = {
            "mode": "daemonset",
            "processors": {"batch": {"timeout": "20ms"}, "k8sAttributes": {"clusterName": "prod-eu"}},
            "exporters": [to(backend, "backend", "http/protobuf")],
        }
        async with agent_running(spec) as agent:
            await sdk_send(agent, "grpc", team("shop"), spans=10, logs=2)
            await sdk_send(agent, "http", {**team("pay"), "k8s.node.name": "node-3"}, spans=4, logs=3)
            await backend.wait_for_items_async("traces", 14)
        nodes = {}
        for resource, _, _ in backend.spans() + backend.data_points() + backend.log_records():
            assert resource["k8s.cluster.name"] == "prod-eu"
            assert "k8s.pod.name" not in resource
            nodes[resource["k8s.namespace.name"]] = resource["k8s.node.name"]
        assert nodes == {"shop": "node-7", "pay": "node-3"}, "an app's own k8s.node.name is kept"
