"""TLS and mTLS on both receivers, from Secrets mounted the kubelet's way; rotated certificates are used by
the next handshake without a restart."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
import trustme
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import loader
from otlp_agent.security import secret_files as secret_reading

from tests.support.agent_runner import RunningAgent, agent_running, loopback_agent, pipeline_manifest
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles, client_context, der
from tests.support.trace_requests import TRACE_METHOD
from tests.support.waiting import eventually_async


def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1")


def traces(name: str) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


def tls_spec(backend: OtlpBackend, tls: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"grpc": {"tls": tls}, "http": {"tls": tls}}},
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}],
    }


async def presented_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER certificate a server on `port` presents in a fresh handshake."""
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 5)
    try:
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    assert certificate is not None
    return bytes(certificate)


async def https_post(agent: RunningAgent, context: ssl.SSLContext, body: bytes) -> int:
    url = agent.http_endpoint.replace("http://", "https://") + "/v1/traces"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers={"Content-Type": "application/x-protobuf"}, ssl=context, timeout=5
        ) as response,
    ):
        return response.status


async def grpc_tls_export(
    agent: RunningAgent, ca: trustme.CA, body: bytes, cert: trustme.LeafCert | None = None
) -> grpc.StatusCode:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem.bytes(),
        private_key=cert.private_key_pem.bytes() if cert else None,
        certificate_chain=cert.cert_chain_pems[0].bytes() if cert else None,
    )
    async with grpc.aio.secure_channel(agent.grpc_endpoint, credentials) as channel:
        try:
            await channel.unary_unary(TRACE_METHOD)(body, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def span_names(backend: OtlpBackend) -> set[str]:
    return {span.name for _, _, span in backend.spans()}


async def test_both_receivers_serve_tls_and_present_a_rotated_certificate_on_the_next_handshake(
    secret_files: SecretFiles, ca: trustme.CA, backend: OtlpBackend
) -> None:
    first, second = server_cert(ca), server_cert(ca)
    secret_files.write_tls("agent-tls", first)
    async with agent_running(tls_spec(backend, {"certSecret": "agent-tls"})) as agent:
        ports = (agent.grpc_port, agent.http_port)
        trusting = client_context(ca)
        for port in ports:
            assert await presented_certificate(port, trusting) == der(first)
        assert await https_post(agent, trusting, traces("over-https")) == 200
        assert await grpc_tls_export(agent, ca, traces("over-grpc-tls")) == grpc.StatusCode.OK

        secret_files.write_tls("agent-tls", second)
        for port in ports:

            async def rotated(port: int = port) -> bool:
                return await presented_certificate(port, trusting) == der(second)

            await eventually_async(rotated, timeout=10, what=f"port {port} to present the new certificate")
        assert await https_post(agent, trusting, traces("after-rotation-https")) == 200
        assert await grpc_tls_export(agent, ca, traces("after-rotation-grpc")) == grpc.StatusCode.OK
        await backend.wait_for_items_async("traces", 4)
        assert span_names(backend) == {
            "over-https",
            "over-grpc-tls",
            "after-rotation-https",
            "after-rotation-grpc",
        }


async def test_plaintext_and_untrusting_clients_get_nothing_through_a_tls_receiver(
    secret_files: SecretFiles, ca: trustme.CA, backend: OtlpBackend
) -> None:
    secret_files.write_tls("agent-tls", server_cert(ca))
    async with agent_running(tls_spec(backend, {"certSecret": "agent-tls"})) as agent:
        with pytest.raises(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{agent.http_endpoint}/v1/traces", data=traces("plain"), timeout=5) as response,
            ):
                await response.read()
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(TRACE_METHOD)(traces("plain-grpc"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await https_post(agent, ssl.create_default_context(), traces("untrusted"))
        assert await grpc_tls_export(agent, trustme.CA(), traces("other-ca")) == grpc.StatusCode.UNAVAILABLE
        assert await https_post(agent, client_context(ca), traces("trusted")) == 200
        await backend.wait_for_items_async("traces", 1)
        assert span_names(backend) == {"trusted"}


async def test_mtls_receivers_accept_only_clients_with_a_certificate_from_the_client_ca(
    secret_files: SecretFiles, ca: trustme.CA, backend: OtlpBackend
) -> None:
    client_ca, stranger_ca = trustme.CA(), trustme.CA()
    secret_files.write_tls("agent-tls", server_cert(ca))
    secret_files.write("clients", **{"ca.crt": client_ca.cert_pem.bytes()})
    spec = tls_spec(
        backend, {"certSecret": "agent-tls", "clientCaSecret": {"name": "clients", "key": "ca.crt"}}
    )
    good, stranger = client_ca.issue_cert("app@shop"), stranger_ca.issue_cert("app@shop")
    async with agent_running(spec) as agent:
        for cert in (None, stranger):
            with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
                await https_post(agent, client_context(ca, cert), traces("refused"))
            assert await grpc_tls_export(agent, ca, traces("refused"), cert) == grpc.StatusCode.UNAVAILABLE
        assert await https_post(agent, client_context(ca, good), traces("mtls-https")) == 200
        assert await grpc_tls_export(agent, ca, traces("mtls-grpc"), good) == grpc.StatusCode.OK
        await backend.wait_for_items_async("traces", 2)
        assert span_names(backend) == {"mtls-https", "mtls-grpc"}


async def test_an_agent_whose_certificate_secret_is_not_mounted_refuses_to_start(
    secret_files: SecretFiles, backend: OtlpBackend
) -> None:
    pipeline = loader.load_document(pipeline_manifest(tls_spec(backend, {"certSecret": "agent-tls"})))
    agent = loopback_agent(pipeline)
    try:
        with pytest.raises(secret_reading.SecretError, match=r"agent-tls/tls\.crt"):
            await agent.start()
        assert not agent.ready
    finally:
        await agent.shutdown()
