"""WebSocket requests go through the same admission as HTTP requests: memory reserved before a message is
read (a message that must wait for room stops the connection being read; one refused for memory is answered
by its id and the connection goes on), the per-request item limit, and messages in fragments. Against an
agent running in the test's event loop, with the reference client or raw frames where the client library
cannot say what a test needs (fragments, frames sent too early)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from otlp_agent.exporter import memory
from otlp_agent.otlp import otlp_json
from otlp_agent.receivers import admission

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.waiting import eventually
from tests.support.websocket_client import OtlpWebSocket

MiB = 1024 * 1024
LIMIT = 8 * MiB


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        yield started


def pipeline(backend: OtlpBackend, **http: Any) -> dict[str, Any]:
    small = {"maxBodySize": "1Mi"}  # twice the largest request must fit in the (small) memory limit
    return {
        "receivers": {
            "otlp": {
                "http": {**small, **http},
                "grpc": {"maxMessageSize": "1Mi"},
                "websocket": {"enabled": True},
            }
        },
        "processors": {
            "memoryLimiter": {"limit": LIMIT, "spikeLimit": 2 * MiB},
            "batch": {"timeout": "10ms"},
        },
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


def url(agent: RunningAgent) -> str:
    return agent.http_endpoint.replace("http://", "ws://") + "/v1/websocket"


def spans(count: int, blob: int = 0, name: str = "ws") -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(count):
        span = scope.spans.add(
            name=f"{name}-{index}", trace_id=b"\x01" * 16, span_id=(index + 1).to_bytes(8, "big")
        )
        if blob:
            span.attributes.add(key="blob").value.string_value = "x" * blob
    return bytes(request.SerializeToString())


def refused(agent: RunningAgent, reason: str) -> float:
    return agent.metric(
        "otlp_agent_refused_requests_total", signal="traces", transport="websocket", reason=reason
    )


async def hold_all_but(agent: RunningAgent, room: int) -> memory.Lease:
    """Reserve the agent's memory so that a large request (over a 64th of the limit: a sixteenth is kept for
    small ones) of more than `room` bytes must wait, while small ones still pass."""
    return await agent.agent.pipeline.limiter.reserve(LIMIT - LIMIT // 16 - room, 1)


@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
async def test_more_entries_than_max_items_per_request_are_refused_by_id_and_the_connection_goes_on(
    backend: OtlpBackend, as_json: bool
) -> None:
    async with (
        agent_running(pipeline(backend, maxItemsPerRequest=100)) as agent,
        await OtlpWebSocket.connect(url(agent)) as client,
    ):
        body = spans(200)  # 200 spans, a scope and a resource: 202 entries
        if as_json:
            body = otlp_json.to_json(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
        answer = await client.export("traces", body, json=as_json)
        assert (answer["id"], answer["status"], answer["retryable"]) == ("1", 413, False), answer
        assert "maxItemsPerRequest" in answer["error"]["message"]
        assert refused(agent, "too_many_items") == 1
        assert (await client.export("traces", spans(50)))["status"] == 200
        await backend.wait_for_items_async("traces", 50)


async def test_a_message_waiting_for_memory_stops_its_connection_being_read(
    backend: OtlpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission, "RESERVE_WAIT", 60.0)  # waits until the test makes room
    large = spans(1, blob=900 * 1024, name="large")
    async with agent_running(pipeline(backend)) as agent:
        held = await hold_all_but(agent, len(large) - 1)
        async with (
            await OtlpWebSocket.connect(url(agent)) as first,
            await OtlpWebSocket.connect(url(agent)) as other,
        ):
            waiting = await first.send("traces", large)
            behind = await first.send("traces", spans(1, name="behind"))
            # Small requests on another connection are served meanwhile (there is room for them; each answer
            # takes the agent's event loop through many rounds)...
            for index in range(5):
                assert (await other.export("traces", spans(1, name=f"other-{index}")))["status"] == 200
            # ...but the request behind the waiting one was not read: the connection is not read meanwhile.
            assert first.answered == {}
            held.release()
            assert (await first.answer(waiting))["status"] == 200
            assert (await first.answer(behind))["status"] == 200
        await backend.wait_for_items_async("traces", 7)
        await eventually(lambda: agent.agent.pipeline.limiter.receiving == 0, what="reservations given back")


async def test_a_message_refused_for_memory_is_answered_by_its_id_and_the_connection_goes_on(
    backend: OtlpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission, "RESERVE_WAIT", 0.2)
    large = spans(1, blob=900 * 1024, name="large")
    async with agent_running(pipeline(backend)) as agent, await OtlpWebSocket.connect(url(agent)) as client:
        held = await hold_all_but(agent, len(large) - 1)
        first = await client.send("traces", large, request_id="big-1")
        answer = await client.answer(first)
        assert (answer["status"], answer["retryable"], answer["retryAfter"]) == (503, True, 1), answer
        assert "retry later" in answer["error"]["message"]
        assert refused(agent, "memory_limit") == 1
        assert agent.agent.pipeline.limiter.receiving == held.size, "the refused message was not kept"
        held.release()
        assert (await client.export("traces", large))["status"] == 200
        await backend.wait_for_items_async("traces", 1)


class RawWebSocket:
    """A WebSocket client on a bare TCP connection, for what client libraries do not send: fragmented
    messages, frames before the handshake's answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, agent: RunningAgent, early: bytes = b"") -> tuple[RawWebSocket, int]:
        """Connect and ask for the upgrade (followed at once by `early`); the answer's status."""
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.http_port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /v1/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            + early
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return cls(reader, writer), int(head.split()[1])

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            length = bytes([0x80 | size])
        elif size < 65536:
            length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        return bytes([(0x80 if fin else 0) | opcode]) + length + mask + masked

    async def answer(self) -> dict[str, Any]:
        """The next text message from the agent (its frames are not masked; pings and pongs are skipped)."""
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(2), 10)
            size = head[1] & 0x7F
            if size >= 126:
                size = int.from_bytes(await self.reader.readexactly(2 if size == 126 else 8), "big")
            payload = await self.reader.readexactly(size)
            if head[0] & 0x0F == 0x1:
                return dict(orjson.loads(payload))

    async def close_code(self) -> int | None:
        """Read the agent's frames up to its close frame: its code (None: the connection ended first)."""
        while True:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(2), 30)
                size = head[1] & 0x7F
                if size >= 126:
                    size = int.from_bytes(await self.reader.readexactly(2 if size == 126 else 8), "big")
                payload = await self.reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if head[0] & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.close()


async def test_a_message_in_fragments_is_read_within_one_reservation_and_answered(
    backend: OtlpBackend,
) -> None:
    async with agent_running(pipeline(backend)) as agent:
        client, status = await RawWebSocket.open(agent)
        assert status == 101
        message = b"traces frag-1\n" + spans(30, blob=2000)
        thirds = [message[: len(message) // 3], message[len(message) // 3 : 2 * len(message) // 3]]
        thirds.append(message[2 * len(message) // 3 :])
        client.writer.write(RawWebSocket.frame(0x2, thirds[0], fin=False))
        client.writer.write(
            RawWebSocket.frame(0x9, b"ping between fragments")
        )  # control frames may interleave
        client.writer.write(RawWebSocket.frame(0x0, thirds[1], fin=False))
        client.writer.write(RawWebSocket.frame(0x0, thirds[2]))
        answer = await client.answer()
        assert (answer["id"], answer["status"]) == ("frag-1", 200)
        client.close()
        await backend.wait_for_items_async("traces", 30)
        await eventually(lambda: agent.agent.pipeline.limiter.receiving == 0, what="reservations given back")


async def test_frames_sent_before_the_handshake_answer_are_refused(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend)) as agent:
        early = RawWebSocket.frame(0x2, b"traces 1\n" + spans(1))
        client, status = await RawWebSocket.open(agent, early=early)
        client.close()
        assert status == 400
        assert agent.metric("otlp_agent_websocket_refused_connections_total", reason="protocol") == 1
        async with await OtlpWebSocket.connect(url(agent)) as good:  # a client that waits is served
            assert (await good.export("traces", spans(1)))["status"] == 200


async def test_a_plain_http_request_on_the_websocket_path_leaves_its_connection_to_http(
    backend: OtlpBackend,
) -> None:
    async with agent_running(pipeline(backend)) as agent:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.http_port)

        async def status() -> int:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            await reader.readexactly(int(length[0].split(b":")[1]))
            return int(head.split()[1])

        writer.write(b"GET /v1/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # no upgrade asked for
        assert await status() == 400
        body = spans(1)
        writer.write(  # the same connection goes on serving OTLP/HTTP
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert await status() == 200
        writer.close()
        await backend.wait_for_items_async("traces", 1)


async def test_a_message_that_does_not_arrive_within_read_timeout_closes_its_connection_and_frees_memory(
    backend: OtlpBackend,
) -> None:
    # Each connection starts a message in fragments, which reserves maxBodySize, then only pings (RFC 6455
    # lets control frames come between fragments). Seven of them would hold all the memory a gRPC call
    # (which reserves maxMessageSize, a large reservation) could use, for as long as they ping.
    async with agent_running(pipeline(backend, readTimeout="1s")) as agent:
        limiter = agent.agent.pipeline.limiter
        clients = []
        for index in range(7):
            client, status = await RawWebSocket.open(agent)
            assert status == 101
            client.writer.write(RawWebSocket.frame(0x2, b"traces slow-%d\n" % index, fin=False))
            clients.append(client)

        async def ping() -> None:
            while True:
                for client in clients:
                    client.writer.write(RawWebSocket.frame(0x9, b"still here"))
                await asyncio.sleep(0.2)

        pinging = asyncio.get_running_loop().create_task(ping())
        try:
            # (A generous bound, only to catch a hang: pings keep coming, so each read gets a frame.)
            codes = await asyncio.wait_for(asyncio.gather(*(c.close_code() for c in clients)), 60)
        finally:
            pinging.cancel()
            for client in clients:
                client.close()
        assert codes == [1008] * 7
        await eventually(lambda: limiter.receiving == 0, what="the reservations given back")
        closed = agent.metric("otlp_agent_websocket_closed_connections_total", reason="too_slow")
        assert closed == 7 and refused_unknown(agent, "timeout") == 7
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
            await export(trace_service_pb2.ExportTraceServiceRequest.FromString(spans(1)), timeout=30)
        await backend.wait_for_items_async("traces", 1)


def refused_unknown(agent: RunningAgent, reason: str) -> float:
    return agent.metric(
        "otlp_agent_refused_requests_total", signal="unknown", transport="websocket", reason=reason
    )
