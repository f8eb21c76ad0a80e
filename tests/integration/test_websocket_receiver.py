"""OTLP over WebSocket against a running agent, with the reference client (aiohttp's WebSocket client):
protobuf and OTLP/JSON requests answered by id with what OTLP/HTTP would say, many requests on one
connection, bad messages answered precisely while the connection stays up, the HTTP receiver's size limit,
bearer token and allowed origins, flow control (a busy connection is not read), idle and shutdown closes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import loader, secret_mounts
from otlp_agent.otlp import otlp_json
from otlp_agent.receivers import websocket_receiver

from tests.support.agent_runner import RunningAgent, agent_running, pipeline_manifest
from tests.support.gated_transport import GatedTransport
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles, client_context
from tests.support.waiting import eventually
from tests.support.websocket_client import OtlpWebSocket

TOKEN = "ws-token-0123456789"


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        yield started


def pipeline(backend: OtlpBackend, websocket: dict[str, Any] | None = None, **http: Any) -> dict[str, Any]:
    exporter = {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
    return {
        "receivers": {"otlp": {"http": http, "websocket": {"enabled": True, **(websocket or {})}}},
        "exporters": [exporter],
        "processors": {"batch": {"timeout": "10ms"}},
    }


def url(agent: RunningAgent, query: str = "") -> str:
    return agent.http_endpoint.replace("http://", "ws://") + "/v1/websocket" + query


def spans(first: int, count: int) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(first, first + count):
        scope.spans.add(name=f"ws-{index}", trace_id=b"\x01" * 16, span_id=(index + 1).to_bytes(8, "big"))
    return bytes(request.SerializeToString())


def names(backend: OtlpBackend) -> list[str]:
    return sorted(span.name for _, _, span in backend.spans())


async def test_protobuf_and_json_requests_are_answered_by_id_and_exported(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend)) as agent, await OtlpWebSocket.connect(url(agent)) as client:
        binary = await client.export("traces", spans(0, 3))
        as_json = otlp_json.to_json(trace_service_pb2.ExportTraceServiceRequest.FromString(spans(3, 2)))
        text = await client.export("traces", as_json, json=True)
        assert binary == {"id": "1", "status": 200}
        assert text == {"id": "2", "status": 200}
        await backend.wait_for_items_async("traces", 5)
        assert names(backend) == [f"ws-{i}" for i in range(5)]
        assert (
            agent.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="websocket") == 5
        )


async def test_many_requests_on_one_connection_each_get_exactly_one_answer(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend)) as agent, await OtlpWebSocket.connect(url(agent)) as client:
        ids = [await client.send("traces", spans(10 * n, 10), request_id=f"req-{n}") for n in range(50)]
        answers = [await client.answer(request_id) for request_id in ids]
        assert [a["id"] for a in answers] == ids and {a["status"] for a in answers} == {200}
        await backend.wait_for_items_async("traces", 500)
        assert client.duplicates == []


async def test_a_bad_json_span_is_rejected_alone_as_partial_success(backend: OtlpBackend) -> None:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "good"}, {"traceId": "zz"}]}]}]}
    async with agent_running(pipeline(backend)) as agent, await OtlpWebSocket.connect(url(agent)) as client:
        answer = await client.export("traces", orjson.dumps(document), json=True)
        assert answer["status"] == 200
        assert answer["partialSuccess"]["rejectedSpans"] == "1"
        assert answer["partialSuccess"]["errorMessage"].startswith("Span[1].traceId")


@pytest.mark.parametrize(
    ("message", "answer_id", "status", "text"),
    [
        (b"no header at all", None, 400, "starts with '<signal> <id>"),
        (b"traces\n" + b"x", None, 400, "the header is '<signal> <id>'"),
        (b"spans 7\n", "7", 400, "unknown signal 'spans'"),
        (b"traces 8\n\xff\xff\xff", "8", 400, "invalid traces protobuf"),
        ("traces 9\n{not json", "9", 400, "invalid OTLP/JSON"),
    ],
)
async def test_bad_messages_get_a_precise_answer_and_the_connection_stays_up(
    backend: OtlpBackend, message: bytes | str, answer_id: str | None, status: int, text: str
) -> None:
    async with agent_running(pipeline(backend)) as agent, await OtlpWebSocket.connect(url(agent)) as client:
        await client.send_raw(message)
        answer = await client.answer(answer_id)
        assert answer["status"] == status and answer["retryable"] is False
        assert answer["error"]["code"] == 3 and text in answer["error"]["message"]  # INVALID_ARGUMENT
        assert (await client.export("traces", spans(0, 1)))["status"] == 200  # still serving
        assert (
            agent.metric(
                "otlp_agent_refused_requests_total",
                signal="traces",
                transport="websocket",
                reason="malformed",
            )
            + agent.metric(
                "otlp_agent_refused_requests_total",
                signal="unknown",
                transport="websocket",
                reason="malformed",
            )
            == 1
        )


async def test_the_http_receivers_size_limit_applies_per_request(backend: OtlpBackend) -> None:
    async with (
        agent_running(pipeline(backend, maxBodySize="2Ki")) as agent,
        await OtlpWebSocket.connect(url(agent)) as client,
    ):
        big = spans(0, 56)  # just over 2 KiB: over the limit, within the header allowance
        assert 2048 < len(big) < 2048 + 100
        answer = await client.export("traces", big)
        assert answer["status"] == 413 and answer["retryable"] is False
        await client.send("traces", spans(0, 500))  # far over: its id cannot even be read
        await eventually(lambda: client.socket.closed, what="the connection to be closed")
        assert client.socket.close_code == 1009
        assert agent.metric("otlp_agent_websocket_closed_connections_total", reason="too_large") == 1


async def test_a_bearer_token_is_required_by_header_or_query_when_the_http_receiver_has_one(
    backend: OtlpBackend, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path / "secrets"))
    SecretFiles(tmp_path / "secrets").write("ws-auth", token=TOKEN.encode())
    auth = {"bearerTokenSecret": {"name": "ws-auth", "key": "token"}}
    async with agent_running(pipeline(backend, auth=auth)) as agent:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await OtlpWebSocket.connect(url(agent))
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await OtlpWebSocket.connect(url(agent, "?access_token=wrong"))
        async with await OtlpWebSocket.connect(url(agent), {"Authorization": f"Bearer {TOKEN}"}) as client:
            assert (await client.export("traces", spans(0, 1)))["status"] == 200
        async with await OtlpWebSocket.connect(url(agent, f"?access_token={TOKEN}")) as client:
            assert (await client.export("traces", spans(1, 1)))["status"] == 200
        assert agent.metric("otlp_agent_websocket_refused_connections_total", reason="unauthenticated") == 2


async def test_a_rotated_token_stops_working_on_an_open_connection(
    backend: OtlpBackend, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path / "secrets"))
    secrets = SecretFiles(tmp_path / "secrets")
    secrets.write("ws-auth", token=TOKEN.encode())
    auth = {"bearerTokenSecret": {"name": "ws-auth", "key": "token"}}
    async with agent_running(pipeline(backend, auth=auth)) as agent:
        async with await OtlpWebSocket.connect(url(agent, f"?access_token={TOKEN}")) as client:
            assert (await client.export("traces", spans(0, 1)))["status"] == 200
            secrets.write("ws-auth", token=b"the-new-token-0123456789")

            async def until_refused() -> dict[str, Any]:
                for index in range(1, 1000):  # the agent looks at the Secret's file every 2 s
                    answer = await client.export("traces", spans(index, 1))
                    if answer["status"] != 200:
                        return answer
                    await asyncio.sleep(0.1)
                raise AssertionError("the old token kept working")

            answer = await asyncio.wait_for(until_refused(), 60)
            assert (answer["status"], answer["retryable"], answer["error"]["code"]) == (401, False, 16), (
                answer
            )
            await eventually(lambda: client.socket.closed, what="the connection to be closed")
            assert client.socket.close_code == 1008
        assert agent.metric("otlp_agent_websocket_closed_connections_total", reason="unauthenticated") == 1
        refused = agent.metric(
            "otlp_agent_refused_requests_total",
            signal="traces",
            transport="websocket",
            reason="unauthenticated",
        )
        assert refused == 1
        with pytest.raises(aiohttp.WSServerHandshakeError):  # the old token is refused at the upgrade too
            await OtlpWebSocket.connect(url(agent, f"?access_token={TOKEN}"))
        new = {"Authorization": "Bearer the-new-token-0123456789"}
        async with await OtlpWebSocket.connect(url(agent), new) as client:
            assert (await client.export("traces", spans(2000, 1)))["status"] == 200


async def test_browsers_are_served_only_from_allowed_origins(backend: OtlpBackend) -> None:
    cors = {"allowedOrigins": ["https://app.example.com"]}
    async with agent_running(pipeline(backend, cors=cors)) as agent:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await OtlpWebSocket.connect(url(agent), {"Origin": "https://evil.example.com"})
        assert refused.value.status == 403
        async with await OtlpWebSocket.connect(url(agent), {"Origin": "https://app.example.com"}) as client:
            assert (await client.export("traces", spans(0, 1)))["status"] == 200
        async with await OtlpWebSocket.connect(url(agent)) as client:  # not a browser: no Origin header
            assert (await client.export("traces", spans(1, 1)))["status"] == 200


async def test_a_connection_with_max_in_flight_requests_being_handled_is_not_read(
    backend: OtlpBackend,
) -> None:
    gate = GatedTransport()  # the backend holds every export until the test opens the gate
    spec = pipeline(backend, {"maxInFlight": 2})
    spec["exporters"][0]["delivery"] = "endToEnd"  # a request is handled until its data is exported
    spec["processors"]["batch"]["maxItems"] = 1  # one request, one batch, one export
    async with (
        agent_running(spec, transports={"backend": gate}) as agent,
        await OtlpWebSocket.connect(url(agent)) as client,
    ):
        ids = [await client.send("traces", spans(n, 1)) for n in range(10)]
        await eventually(lambda: gate.waiting == 2, what="two exports to reach the backend")
        await asyncio.sleep(0.2)  # time to read more, had the agent not stopped reading
        batched = agent.metric("otlp_agent_queue_batches", exporter="backend")
        assert (gate.waiting, batched, client.answered) == (2, 0, {})  # 8 requests never read
        gate.gate.set()
        answers = [await client.answer(request_id) for request_id in ids]
        assert {a["status"] for a in answers} == {200} and gate.items == 10


async def test_too_many_connections_are_refused_with_503(backend: OtlpBackend) -> None:
    async with (
        agent_running(pipeline(backend, {"maxConnections": 1})) as agent,
        await OtlpWebSocket.connect(url(agent)) as first,
    ):
        await eventually(lambda: agent.metric("otlp_agent_websocket_connections") == 1)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await OtlpWebSocket.connect(url(agent))
        assert refused.value.status == 503
        assert (await first.export("traces", spans(0, 1)))["status"] == 200


async def test_an_idle_connection_is_closed_though_its_client_answers_pings(
    backend: OtlpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent pings every 0.2 s here: the client (its library) answers five pongs per idleTimeout.
    monkeypatch.setattr(websocket_receiver, "_HEARTBEAT", 0.2)
    async with (
        agent_running(pipeline(backend, {"idleTimeout": "1s"})) as agent,
        await OtlpWebSocket.connect(url(agent)) as client,
    ):
        assert (await client.export("traces", spans(0, 1)))["status"] == 200
        await eventually(lambda: client.socket.closed, timeout=30, what="the idle connection to be closed")
        assert client.socket.close_code == 1008
        assert agent.metric("otlp_agent_websocket_closed_connections_total", reason="idle") == 1


async def test_a_connection_waiting_for_an_answer_is_not_idle(
    backend: OtlpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_receiver, "_HEARTBEAT", 0.2)
    gate = GatedTransport()  # the export waits until the test opens the gate
    spec = pipeline(backend, {"idleTimeout": "1s"})
    spec["exporters"][0]["delivery"] = "endToEnd"  # the answer comes once the backend took the data
    async with (
        agent_running(spec, transports={"backend": gate}) as agent,
        await OtlpWebSocket.connect(url(agent)) as client,
    ):
        request_id = await client.send("traces", spans(0, 1))
        await eventually(lambda: gate.waiting == 1, what="the export to start")
        await asyncio.sleep(3.0)  # three idleTimeouts with nothing sent: had it been idle, it would be closed
        assert not client.socket.closed
        gate.gate.set()
        assert (await client.answer(request_id))["status"] == 200
        await eventually(lambda: client.socket.closed, timeout=30, what="the connection, idle now, closed")
        assert agent.metric("otlp_agent_websocket_closed_connections_total", reason="idle") == 1


async def test_a_closed_connection_gives_its_slot_back_while_its_requests_wait_for_export(
    backend: OtlpBackend,
) -> None:
    gate = GatedTransport()  # the backend is down: endToEnd requests wait
    spec = pipeline(backend, {"maxConnections": 2})
    spec["exporters"][0]["delivery"] = "endToEnd"
    async with agent_running(spec, transports={"backend": gate}) as agent:

        async def send_and_leave(exports: int) -> None:
            async with await OtlpWebSocket.connect(url(agent)) as client:
                await client.send("traces", spans(exports, 1))
                await eventually(lambda: gate.waiting == exports, what="the export to start")

        await send_and_leave(1)  # two clients each send a request, then leave
        await send_and_leave(2)
        await eventually(lambda: agent.metric("otlp_agent_websocket_connections") == 0, what="slots freed")
        async with await OtlpWebSocket.connect(url(agent)) as third:  # not refused with 503
            assert agent.metric("otlp_agent_websocket_connections") == 1
            request_id = await third.send("traces", spans(3, 1))
            gate.gate.set()
            assert (await third.answer(request_id))["status"] == 200
        await eventually(lambda: gate.items == 3, what="the leavers' requests exported too")


async def test_connections_are_closed_going_away_when_the_agent_stops(backend: OtlpBackend) -> None:
    async with agent_running(pipeline(backend)) as agent:
        client = await OtlpWebSocket.connect(url(agent))
        assert (await client.export("traces", spans(0, 1)))["status"] == 200
    try:
        await eventually(lambda: client.socket.closed, what="the connection to be closed")
        assert client.socket.close_code == 1001
    finally:
        await client.close()


async def test_a_request_in_flight_at_shutdown_is_answered_before_the_connection_closes(
    backend: OtlpBackend,
) -> None:
    gate = GatedTransport()  # the export never finishes: the client waits for endToEnd delivery
    spec = pipeline(backend)
    spec["exporters"][0]["delivery"] = "endToEnd"
    spec["lifecycle"] = {"shutdownGracePeriod": "2s"}
    async with agent_running(spec, transports={"backend": gate}) as agent:
        client = await OtlpWebSocket.connect(url(agent))
        request_id = await client.send("traces", spans(0, 1))
        await eventually(lambda: gate.waiting == 1, what="the export to start")
    try:
        answer = await client.answer(request_id)
        assert (answer["status"], answer["retryable"]) == (503, True)  # told to send it again
        await eventually(lambda: client.socket.closed, what="the connection to be closed")
        assert client.socket.close_code == 1001
    finally:
        await client.close()


async def test_over_tls_the_websocket_is_wss_on_the_https_port(
    backend: OtlpBackend, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path / "secrets"))
    ca = trustme.CA()
    SecretFiles(tmp_path / "secrets").write_tls("agent-tls", ca.issue_cert("localhost", "127.0.0.1"))
    async with agent_running(pipeline(backend, tls={"certSecret": "agent-tls"})) as agent:
        secure = url(agent).replace("ws://", "wss://")
        async with await OtlpWebSocket.connect(secure, ssl=client_context(ca)) as client:
            assert (await client.export("traces", spans(0, 2)))["status"] == 200
        with pytest.raises(aiohttp.ClientConnectionError):  # plaintext to the TLS port
            await OtlpWebSocket.connect(url(agent))
        await backend.wait_for_items_async("traces", 2)


async def test_a_reload_that_turns_the_websocket_on_serves_it(backend: OtlpBackend) -> None:
    off = pipeline(backend)
    off["receivers"]["otlp"]["websocket"] = {"enabled": False}
    async with agent_running(off) as agent:
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await OtlpWebSocket.connect(url(agent))
        assert missing.value.status == 404
        running = agent.agent.spec
        on = pipeline(backend)  # the same pipeline on the same ports, with the WebSocket enabled
        on["receivers"]["otlp"]["http"]["port"] = running.receivers.otlp.http.port
        on["receivers"]["otlp"]["grpc"] = {"port": running.receivers.otlp.grpc.port}
        on["telemetry"] = {"port": running.telemetry.port}
        assert await agent.agent.reload(loader.load_document(pipeline_manifest(on)))
        async with await OtlpWebSocket.connect(url(agent)) as client:
            assert (await client.export("traces", spans(0, 1)))["status"] == 200
