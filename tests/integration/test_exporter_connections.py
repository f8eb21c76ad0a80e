"""`exporters[].connections` in a running agent against a real backend: batches spread over `count`
connections (the backend sees that many client ports), no connection carries more than `maxInFlight`
requests (exports beyond that wait, and the wait is measured), an idle connection is closed after
`idleTimeout` and a new one opened when needed, and no data is lost on the way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.waiting import eventually


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        yield started


def pipeline(
    backend: OtlpBackend, protocol: str, connections: dict[str, Any], consumers: int
) -> dict[str, Any]:
    endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
    exporter = {
        "name": "backend",
        "endpoint": endpoint,
        "protocol": protocol,
        "tls": {"insecure": True},
        "connections": connections,
        "queue": {"consumers": consumers},
    }
    # One request, one batch: every request is an export of its own.
    return {"exporters": [exporter], "processors": {"batch": {"maxItems": 10, "timeout": "10ms"}}}


def ten_spans(seed: int) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(10):
        scope.spans.add(
            name=f"s{seed}-{index}", trace_id=seed.to_bytes(16, "big"), span_id=(index + 1).to_bytes(8, "big")
        )
    return bytes(request.SerializeToString())


async def send(agent: RunningAgent, count: int, first: int = 1) -> None:
    async with aiohttp.ClientSession() as session:
        for seed in range(first, first + count):
            async with session.post(
                f"{agent.http_endpoint}/v1/traces",
                data=ten_spans(seed),
                headers={"Content-Type": "application/x-protobuf"},
            ) as response:
                assert response.status == 200


def peers(backend: OtlpBackend) -> set[str]:
    return {r.peer for r in backend.requests}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_batches_spread_over_count_connections_and_wait_when_all_are_busy(
    backend: OtlpBackend, protocol: str
) -> None:
    backend.default_fault = Fault(delay=0.2)  # a slow backend: exports pile up on the connections
    connections = {"count": 3, "maxInFlight": 2 if protocol == "grpc" else 1}
    async with agent_running(pipeline(backend, protocol, connections, consumers=8)) as agent:
        await send(agent, 24)
        await backend.wait_for_items_async("traces", 240, timeout=30)
        assert len(peers(backend)) == 3
        assert agent.metric("otlp_agent_exporter_connections_total", exporter="backend", event="opened") == 3
        # 8 exports in flight for 3 (HTTP) or 6 (gRPC) slots: the others waited for one.
        assert agent.metric("otlp_agent_exporter_connection_wait_seconds_count", exporter="backend") > 0
        assert backend.accepted_items("traces") == 240


async def test_no_connection_carries_more_than_max_in_flight(backend: OtlpBackend) -> None:
    backend.default_fault = Fault(delay=0.3)
    async with agent_running(
        pipeline(backend, "grpc", {"count": 2, "maxInFlight": 2}, consumers=10)
    ) as agent:
        await send(agent, 10)
        await backend.wait_for_arrivals_async(4)
        await eventually(
            lambda: agent.metric("otlp_agent_exporter_connection_wait_seconds_count", exporter="backend") == 0
        )
        held = [
            agent.metric(
                "otlp_agent_exporter_connection_in_flight", exporter="backend", connection=str(index)
            )
            for index in range(2)
        ]
        assert held == [2, 2]  # 10 exports ready, 4 in flight: 2 per connection
        await backend.wait_for_items_async("traces", 100, timeout=30)
        assert len(peers(backend)) == 2


async def test_an_idle_connection_is_closed_after_idle_timeout_and_reopened_when_needed(
    backend: OtlpBackend,
) -> None:
    async with agent_running(
        pipeline(backend, "http/protobuf", {"count": 1, "idleTimeout": "200ms"}, 1)
    ) as agent:
        await send(agent, 1)
        await backend.wait_for_items_async("traces", 10)
        await eventually(
            lambda: (
                agent.metric("otlp_agent_exporter_connections_total", exporter="backend", event="recycled")
                == 1
            ),
            what="the idle connection to be closed",
        )
        assert agent.metric("otlp_agent_exporter_connections_open", exporter="backend") == 0
        await send(agent, 1, first=2)
        await backend.wait_for_items_async("traces", 20)
        assert len(peers(backend)) == 2  # a new connection
        assert agent.metric("otlp_agent_exporter_connections_total", exporter="backend", event="opened") == 2
