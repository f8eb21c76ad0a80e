"""Slow clients (slowloris) cannot hold the HTTP receiver: stalled headers are disconnected and stalled bodies
get 408 within readTimeout, while other clients are served meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend

READ_TIMEOUT = 0.3
#: How long past readTimeout the agent may take to drop a slow client (aiohttp's timer granularity + load).
SLACK = 3.0
STALLED_CLIENTS = 100


def spec_for(backend: OtlpBackend) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"http": {"readTimeout": f"{int(READ_TIMEOUT * 1000)}ms"}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


def port_of(agent: RunningAgent) -> int:
    return agent.http_port


async def stall(port: int, sent: bytes) -> tuple[bytes, float]:
    """Send `sent` and nothing more; (what the agent answered before closing, seconds until it closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), READ_TIMEOUT + SLACK)
    finally:
        writer.close()
    return answer, time.monotonic() - started


def valid_body() -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name="patient", trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


HEADERS_ONLY_PART = b"POST /v1/traces HTTP/1.1\r\nHost: agent\r\nContent-Type: application/x-protobuf\r\n"
BODY_PART = (
    b"POST /v1/traces HTTP/1.1\r\nHost: agent\r\nContent-Type: application/x-protobuf\r\n"
    b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10
)


async def test_a_client_stuck_in_its_headers_is_disconnected_after_the_read_timeout() -> None:
    async with OtlpBackend() as backend, agent_running(spec_for(backend)) as agent:
        answer, elapsed = await stall(port_of(agent), HEADERS_ONLY_PART)
        assert answer == b""
        assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + SLACK


async def test_a_client_stuck_in_its_body_gets_408_and_is_counted() -> None:
    async with OtlpBackend() as backend, agent_running(spec_for(backend)) as agent:
        answer, elapsed = await stall(port_of(agent), BODY_PART)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + SLACK
        assert (
            agent.metric(
                "otlp_agent_refused_requests_total", signal="traces", transport="http", reason="timeout"
            )
            == 1
        )


async def test_many_stalled_clients_do_not_keep_others_from_being_served() -> None:
    async with OtlpBackend() as backend, agent_running(spec_for(backend)) as agent:
        port = port_of(agent)
        stalled = [
            asyncio.create_task(stall(port, HEADERS_ONLY_PART if i % 2 else BODY_PART))
            for i in range(STALLED_CLIENTS)
        ]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{agent.http_endpoint}/v1/traces",
                data=valid_body(),
                headers={"Content-Type": "application/x-protobuf"},
            ) as response,
        ):
            assert response.status == 200
        assert not any(task.done() for task in stalled), "the valid request was served while they were held"
        results = await asyncio.gather(*stalled)
        assert all(elapsed < READ_TIMEOUT + SLACK for _, elapsed in results)
        await backend.wait_for_items_async("traces", 1)
