"""Receiver bearer tokens (refused, counted, rotated, never logged) and exporter headers from Secrets (sent on
every request, never in logs, metrics or error messages)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import grpc.aio
import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.telemetry import logs

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.secret_files import SecretFiles
from tests.support.trace_requests import TRACE_METHOD
from tests.support.waiting import eventually, eventually_async

TOKEN = "tok-3f9a1c-never-log-me"
API_KEY = "key-77d0e2-never-log-me"


@contextlib.contextmanager
def agent_log_lines() -> Iterator[list[str]]:
    """Every line the agent logs meanwhile (debug included), formatted as the agent writes them."""
    lines: list[str] = []
    formatter = logs.JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    logger = logging.getLogger("otlp_agent")
    handler, level = Capture(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def traces(name: str) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


async def http_post(
    agent: RunningAgent, authorization: str | None, content_type: str = "application/x-protobuf"
) -> tuple[int, bytes, str | None]:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = traces("http") if content_type == "application/x-protobuf" else b'{"resourceSpans": []}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{agent.http_endpoint}/v1/traces", data=body, headers=headers) as response,
    ):
        return response.status, await response.read(), response.headers.get("WWW-Authenticate")


async def grpc_export(agent: RunningAgent, authorization: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", authorization),) if authorization is not None else None
    async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
        try:
            await channel.unary_unary(TRACE_METHOD)(traces("grpc"), timeout=5, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def protected_spec(backend: OtlpBackend) -> dict[str, Any]:
    auth = {"bearerTokenSecret": {"name": "otlp-token", "key": "token"}}
    return {
        "receivers": {"otlp": {"grpc": {"auth": auth}, "http": {"auth": auth}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


def unauthenticated(agent: RunningAgent, transport: str) -> float:
    return agent.metric(
        "otlp_agent_refused_requests_total", signal="traces", transport=transport, reason="unauthenticated"
    )


WRONG = [None, "", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer wrong"]


async def test_receivers_refuse_a_missing_or_wrong_token_count_it_and_never_log_it(
    secret_files: SecretFiles,
) -> None:
    secret_files.write("otlp-token", token=f"{TOKEN}\n".encode())
    async with OtlpBackend() as backend, agent_running(protected_spec(backend)) as agent:
        with agent_log_lines() as lines:
            for authorization in WRONG:
                status, body, challenge = await http_post(agent, authorization)
                assert (status, challenge) == (401, "Bearer"), authorization
                assert status_pb2.Status.FromString(body).code == grpc.StatusCode.UNAUTHENTICATED.value[0]
                code, details = await grpc_export(agent, authorization)
                assert code == grpc.StatusCode.UNAUTHENTICATED, authorization
                assert TOKEN not in details
            json_status, json_body, _ = await http_post(agent, "Bearer nope", "application/json")
            assert json_status == 401
            assert orjson.loads(json_body)["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
            assert unauthenticated(agent, "http") == len(WRONG) + 1
            assert unauthenticated(agent, "grpc") == len(WRONG)
            assert (await http_post(agent, f"Bearer {TOKEN}"))[0] == 200
            assert (await http_post(agent, f"bearer   {TOKEN}"))[0] == 200, "the scheme is case-insensitive"
            assert (await grpc_export(agent, f"Bearer {TOKEN}"))[0] == grpc.StatusCode.OK
            await backend.wait_for_items_async("traces", 3)
        exposition = agent.agent.metrics.exposition().decode()
        assert backend.requests, "something was exported"
    assert all(TOKEN not in line for line in lines)
    assert TOKEN not in exposition


async def test_a_rotated_token_is_required_without_a_restart(secret_files: SecretFiles) -> None:
    secret_files.write("otlp-token", token=b"first-token")
    async with OtlpBackend() as backend, agent_running(protected_spec(backend)) as agent:
        assert (await http_post(agent, "Bearer first-token"))[0] == 200
        secret_files.write("otlp-token", token=b"second-token")

        # Each receiver watches the Secret's files on its own: both switch, not necessarily at once.
        async def switched() -> bool:
            grpc_accepts = (await grpc_export(agent, "Bearer second-token"))[0] == grpc.StatusCode.OK
            return grpc_accepts and (await http_post(agent, "Bearer second-token"))[0] == 200

        await eventually_async(switched, timeout=30, what="both receivers to accept the new token")
        assert (await http_post(agent, "Bearer first-token"))[0] == 401
        assert (await grpc_export(agent, "Bearer first-token"))[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_exporter_headers_from_secrets_are_sent_but_never_logged_counted_or_echoed(
    secret_files: SecretFiles,
) -> None:
    secret_files.write("backend-key", apiKey=f"{API_KEY}\n".encode())
    headers_from = [{"name": "X-Api-Key", "secretKeyRef": {"name": "backend-key", "key": "apiKey"}}]
    rejection = Fault(
        grpc_code=grpc.StatusCode.PERMISSION_DENIED, http_status=403, message=f"API key {API_KEY} is revoked"
    )
    async with OtlpBackend() as backend:
        backend.default_fault = rejection
        spec = {
            "processors": {"batch": {"timeout": "10ms"}},
            "exporters": [
                {
                    "name": "keyed-grpc",
                    "endpoint": backend.grpc_direct_endpoint,
                    "tls": {"insecure": True},
                    "headersFrom": headers_from,
                },
                {
                    "name": "keyed-http",
                    "endpoint": backend.http_endpoint,
                    "protocol": "http/protobuf",
                    "headersFrom": headers_from,
                },
            ],
        }
        with agent_log_lines() as lines:
            async with agent_running(spec) as agent:
                assert (await http_post(agent, None))[0] == 200
                await backend.wait_for_requests_async(2)

                def failed(name: str) -> float:
                    return agent.metric(
                        "otlp_agent_failed_items_total", exporter=name, signal="traces", reason="rejected"
                    )

                await eventually(lambda: failed("keyed-grpc") == failed("keyed-http") == 1, what="failures")
                exposition = agent.agent.metrics.exposition().decode()
        assert {request.transport: request.headers.get("x-api-key") for request in backend.requests} == {
            "grpc": API_KEY,
            "http": API_KEY,
        }
    failures = [line for line in lines if "items lost" in line]
    assert len(failures) == 2 and all("is revoked" in line and "<redacted>" in line for line in failures)
    assert all(API_KEY not in line for line in lines)
    assert API_KEY not in exposition
