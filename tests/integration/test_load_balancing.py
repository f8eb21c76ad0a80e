"""A load-balancing exporter on a real agent, over three real OTLP/gRPC backends (`endpoints` with
`loadBalancing`): every span of a trace reaches one backend, however many requests the trace's spans came
in, and when one backend goes down its share is delivered by the other two (each span once), while the
per-address metrics say where everything went."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.trace_requests import post
from tests.support.waiting import eventually

TRACES = 60


def request(trace_ids: list[bytes], part: int) -> bytes:
    """One span per trace id, named `<part>`; one resource, one scope."""
    message = trace_service_pb2.ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    for trace_id in trace_ids:
        scope.spans.add(name=str(part), trace_id=trace_id, span_id=os.urandom(8))
    return bytes(message.SerializeToString())


@contextlib.asynccontextmanager
async def balancing(backends: list[OtlpBackend]) -> AsyncIterator[RunningAgent]:
    exporter: dict[str, Any] = {
        "name": "gateways",
        "endpoints": [b.grpc_endpoint for b in backends],
        "protocol": "grpc",
        "tls": {"insecure": True},
        "loadBalancing": {"routingKey": "traceID"},
        "retry": {"initialInterval": "50ms", "maxInterval": "200ms", "maxElapsed": "0s"},
    }
    spec = {"processors": {"batch": {"timeout": "10ms"}}, "exporters": [exporter]}
    async with agent_running(spec) as agent:
        yield agent


def received(backend: OtlpBackend) -> list[tuple[bytes, str]]:
    return [(span.trace_id, span.name) for _, _, span in backend.spans()]


async def test_every_span_of_a_trace_reaches_one_backend_and_a_failed_backends_share_the_others() -> None:
    async with OtlpBackend() as a, OtlpBackend() as b, OtlpBackend() as c:
        backends = [a, b, c]
        traces = [os.urandom(16) for _ in range(TRACES)]
        async with balancing(backends) as agent:
            for part in range(3):  # each trace's spans arrive in three requests
                assert (await post(agent, request(traces, part)))[0] == 200
            for backend in backends:
                await backend.wait_for_items_async("traces", 1)
            await _delivered(backends, 3 * TRACES)
            owners = {
                t: {i for i, x in enumerate(backends) if t in {s for s, _ in received(x)}} for t in traces
            }
            assert all(len(where) == 1 for where in owners.values()), "a trace at two backends"
            assert {i for where in owners.values() for i in where} == {0, 1, 2}

            b.default_fault = Fault.unavailable()  # b goes down: its traces go to a and c meanwhile
            for part in range(3, 6):
                assert (await post(agent, request(traces, part)))[0] == 200
            await _delivered(backends, 6 * TRACES)
            later = [(t, n) for x in (a, c) for t, n in received(x) if int(n) >= 3]
            assert sorted(later) == sorted((t, str(p)) for t in traces for p in range(3, 6)), "each span once"
            moved = {t for t, n in later if 1 in owners[t]}
            assert moved and all(1 in owners[t] for t in moved), "only b's traces moved"
            unmoved = [t for t in traces if 1 not in owners[t]]
            assert all(
                {i for i, x in enumerate(backends) if t in {s for s, n in received(x) if int(n) >= 3}}
                == owners[t]
                for t in unmoved
            ), "the others' traces stayed where they were"
            endpoint = {"exporter": "gateways", "signal": "traces"}

            def counted() -> float:
                return sum(
                    agent.metric("otlp_agent_loadbalancer_items_total", endpoint=x.grpc_endpoint, **endpoint)
                    for x in backends
                )

            # Counted when the agent has the backend's answer, a moment after the backend has the spans.
            await eventually(lambda: counted() >= 6 * TRACES, what="every span counted")
            assert counted() == 6 * TRACES
            assert (
                agent.metric(
                    "otlp_agent_loadbalancer_failed_requests_total",
                    exporter="gateways",
                    endpoint=b.grpc_endpoint,
                    retryable="true",
                )
                >= 1
            )


async def _delivered(backends: list[OtlpBackend], spans: int) -> None:
    await eventually(
        lambda: sum(x.accepted_items("traces") for x in backends) >= spans, what=f"{spans} spans"
    )
