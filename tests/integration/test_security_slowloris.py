"""Slow clients (slowloris) cannot hold the HTTP receiver: stalled headers are disconnected and stalled bodies
get 408 once readTimeout has passed (the connection closes after at most one more readTimeout, capped at
10 s, spent dropping the unread rest of the body), while other clients are served meanwhile.

The agent runs on virtual time (looptime): the loop's clock jumps to the next timer whenever nothing else can
run, so readTimeout is checked exactly, whatever the machine's load, and a realistic 10 s costs nothing.
Its exporter writes to a file, so no thread outside the loop is waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from typing import Any

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent, agent_running

pytestmark = pytest.mark.looptime

READ_TIMEOUT = 10.0
#: After an early answer the agent reads and drops the rest of a body for at most this long.
LINGER = min(READ_TIMEOUT, 10.0)
#: aiohttp rounds timers of 5 s and more up to the next whole second.
GRANULARITY = 1.0
STALLED_CLIENTS = 100


def spec_for(folder: pathlib.Path) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"readTimeout": f"{READ_TIMEOUT:g}s"}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "sink", "debug": {"path": str(folder / "exported.log")}}],
    }


@dataclasses.dataclass(frozen=True)
class Stalled:
    """What a stalled client saw, in loop seconds after it connected."""

    answer: bytes
    answered: float  # the first byte of an answer, or the connection closed without one
    closed: float


async def stall(port: int, sent: bytes) -> Stalled:
    """Send `sent` and nothing more; return what the agent did about it and when."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = loop.time()
    try:
        writer.write(sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT * 10)
        answered = loop.time() - started
        answer += await asyncio.wait_for(reader.read(), READ_TIMEOUT * 10)
    finally:
        writer.close()
    return Stalled(answer, answered, loop.time() - started)


def valid_body() -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name="patient", trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


def on_time(stalled: Stalled) -> bool:
    """Answered (or dropped) once readTimeout had passed, not before, and not later than aiohttp's timer
    rounding; closed at most one linger later."""
    return (
        READ_TIMEOUT <= stalled.answered <= READ_TIMEOUT + GRANULARITY
        and stalled.closed <= stalled.answered + LINGER + GRANULARITY
    )


def refused_for_timeout(agent: RunningAgent) -> float:
    return agent.metric(
        "otlp_agent_refused_requests_total", signal="traces", transport="http", reason="timeout"
    )


HEADERS_ONLY_PART = b"POST /v1/traces HTTP/1.1\r\nHost: agent\r\nContent-Type: application/x-protobuf\r\n"
BODY_PART = (
    b"POST /v1/traces HTTP/1.1\r\nHost: agent\r\nContent-Type: application/x-protobuf\r\n"
    b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10
)


async def test_a_client_stuck_in_its_headers_is_disconnected_after_the_read_timeout(
    tmp_path: pathlib.Path,
) -> None:
    async with agent_running(spec_for(tmp_path)) as agent:
        stalled = await stall(agent.http_port, HEADERS_ONLY_PART)
        assert stalled.answer == b""
        assert on_time(stalled), stalled


async def test_a_client_stuck_in_its_body_gets_408_and_is_counted(tmp_path: pathlib.Path) -> None:
    async with agent_running(spec_for(tmp_path)) as agent:
        stalled = await stall(agent.http_port, BODY_PART)
        assert stalled.answer.startswith(b"HTTP/1.1 408 "), stalled.answer[:80]
        assert on_time(stalled), stalled
        assert refused_for_timeout(agent) == 1


async def test_many_stalled_clients_do_not_keep_others_from_being_served(tmp_path: pathlib.Path) -> None:
    async with agent_running(spec_for(tmp_path)) as agent:
        stalled = [
            asyncio.create_task(stall(agent.http_port, HEADERS_ONLY_PART if i % 2 else BODY_PART))
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
        assert all(on_time(stalled) for stalled in results), [r for r in results if not on_time(r)]
        assert refused_for_timeout(agent) == STALLED_CLIENTS // 2
        received = agent.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http")
        assert received == 1
