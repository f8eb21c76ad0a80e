"""Exporters over TLS and mTLS with trust and identity from Secrets: the server is verified (or, for HTTP,
not, when asked), the client certificate is presented, and a rotated one is presented by new connections."""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import trustme
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support import network
from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles, der
from tests.support.waiting import eventually, eventually_async


def traces(name: str) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    return bytes(request.SerializeToString())


async def post_plain(agent: RunningAgent, body: bytes) -> None:
    assert (await agent.post_traces(body)).status == 200


@dataclasses.dataclass
class Seen:
    """What a TLS test server saw of one request: the client's certificate (DER) and its headers."""

    client_cert: bytes | None
    headers: dict[str, str]


@contextlib.asynccontextmanager
async def https_server(
    cert: trustme.LeafCert, client_ca: trustme.CA | None
) -> AsyncIterator[tuple[str, list[Seen]]]:
    """An OTLP/HTTP endpoint over TLS recording who called; yields (base URL, records)."""
    seen: list[Seen] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)

    async def export(request: web.Request) -> web.Response:
        await request.read()
        peer = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)  # type: ignore[union-attr]
        seen.append(Seen(peer, dict(request.headers)))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app, access_log=None)
    port = await network.serve(runner, context)
    try:
        yield f"https://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def grpc_tls_server(
    cert: trustme.LeafCert, client_ca: trustme.CA
) -> AsyncIterator[tuple[str, list[Seen]]]:
    """An OTLP/gRPC TraceService over mTLS recording who called; yields (endpoint, records)."""
    seen: list[Seen] = []

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        pem = context.auth_context().get("x509_pem_cert", [b""])[0]
        seen.append(Seen(ssl.PEM_cert_to_DER_cert(pem.decode()), dict(context.invocation_metadata() or ())))
        return b""

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(export)
    service = "opentelemetry.proto.collector.trace.v1.TraceService"
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {"Export": handler})])
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())],
        root_certificates=client_ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"https://127.0.0.1:{port}", seen
    finally:
        await server.stop(0)


def exporter(name: str, endpoint: str, protocol: str, tls: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": endpoint,
        "protocol": protocol,
        "signals": ["traces"],
        "tls": tls,
        **extra,
    }


def agent_spec(*exporters: dict[str, Any]) -> dict[str, Any]:
    return {"processors": {"batch": {"timeout": "10ms"}}, "exporters": list(exporters)}


async def test_exporters_verify_the_server_with_the_ca_secret_and_present_a_rotated_client_certificate(
    secret_files: SecretFiles, ca: trustme.CA
) -> None:
    client_ca = trustme.CA()
    first, second = client_ca.issue_cert("agent-1"), client_ca.issue_cert("agent-2")
    secret_files.write("backend-ca", **{"ca.crt": ca.cert_pem.bytes()})
    secret_files.write_tls("agent-client", first)
    tls = {"caSecret": {"name": "backend-ca", "key": "ca.crt"}, "certSecret": "agent-client"}
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    async with (
        https_server(server_cert, client_ca) as (https_url, https_seen),
        grpc_tls_server(server_cert, client_ca) as (grpc_url, grpc_seen),
    ):
        spec = agent_spec(
            exporter("h", https_url, "http/protobuf", tls), exporter("g", grpc_url, "grpc", tls)
        )
        async with agent_running(spec) as agent:
            await post_plain(agent, traces("first"))
            await eventually(
                lambda: bool(https_seen and grpc_seen), what="both TLS servers to get the export"
            )
            assert {s.client_cert for s in https_seen + grpc_seen} == {der(first)}

            secret_files.write_tls("agent-client", second)

            async def second_presented() -> bool:
                await post_plain(agent, traces("after-rotation"))
                await eventually(lambda: bool(https_seen and grpc_seen), what="exports")
                latest = {https_seen[-1].client_cert, grpc_seen[-1].client_cert}
                return latest == {der(second)}

            await eventually_async(second_presented, timeout=10, what="the rotated client certificate")


async def test_an_exporter_refuses_a_server_it_cannot_verify_and_skips_verification_only_when_asked(
    secret_files: SecretFiles, ca: trustme.CA
) -> None:
    untrusted = trustme.CA().issue_cert("localhost", "127.0.0.1")
    async with https_server(untrusted, None) as (url, seen):
        spec = agent_spec(
            exporter("verifying", url, "http/protobuf", {}, retry={"enabled": False}),
            exporter(
                "skipping", url, "http/protobuf", {"insecureSkipVerify": True}, retry={"enabled": False}
            ),
        )
        async with agent_running(spec) as agent:
            await post_plain(agent, traces("only-unverified"))

            def failed() -> float:
                return sum(
                    agent.metric(
                        "otlp_agent_failed_items_total", exporter="verifying", signal="traces", reason=r
                    )
                    for r in ("rejected", "retries_exhausted")
                )

            await eventually(lambda: failed() == 1, what="the verifying exporter to give up on the batch")
            await eventually(
                lambda: agent.metric("otelcol_exporter_sent_spans_total", exporter="skipping") == 1,
                what="the skipping exporter to deliver",
            )
            assert len(seen) == 1


async def test_agents_chain_over_mtls_with_a_bearer_token_from_a_secret(
    secret_files: SecretFiles, ca: trustme.CA
) -> None:
    """Agent A exports over gRPC and HTTP to gateway B, which demands mTLS and a bearer token."""
    client_ca = trustme.CA()
    secret_files.write_tls("gateway-tls", ca.issue_cert("localhost", "127.0.0.1"))
    secret_files.write("gateway-clients", **{"ca.crt": client_ca.cert_pem.bytes()})
    secret_files.write("gateway-token", token=b"s3cret-token\n")
    secret_files.write("gateway-ca", **{"ca.crt": ca.cert_pem.bytes()})
    secret_files.write_tls("agent-client", client_ca.issue_cert("agent"))
    secret_files.write("agent-auth", header=b"Bearer s3cret-token\n")
    server_tls = {"certSecret": "gateway-tls", "clientCaSecret": {"name": "gateway-clients", "key": "ca.crt"}}
    auth = {"bearerTokenSecret": {"name": "gateway-token", "key": "token"}}
    client_tls = {"caSecret": {"name": "gateway-ca", "key": "ca.crt"}, "certSecret": "agent-client"}
    headers_from = [{"name": "Authorization", "secretKeyRef": {"name": "agent-auth", "key": "header"}}]
    async with OtlpBackend() as backend:
        gateway_spec = {
            "receivers": {
                "otlp": {"grpc": {"tls": server_tls, "auth": auth}, "http": {"tls": server_tls, "auth": auth}}
            },
            "processors": {"batch": {"timeout": "10ms"}},
            "exporters": [
                {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
            ],
        }
        async with agent_running(gateway_spec) as gateway:
            grpc_url = gateway.grpc_endpoint
            https_url = gateway.http_endpoint.replace("http://", "https://")
            spec = agent_spec(
                exporter("via-grpc", grpc_url, "grpc", client_tls, headersFrom=headers_from),
                exporter("via-https", https_url, "http/protobuf", client_tls, headersFrom=headers_from),
            )
            async with agent_running(spec) as agent:
                await post_plain(agent, traces("through-the-gateway"))
                await backend.wait_for_items_async("traces", 2)
                assert [span.name for _, _, span in backend.spans()] == ["through-the-gateway"] * 2
                for transport in ("grpc", "http"):
                    assert (
                        gateway.metric(
                            "otelcol_receiver_accepted_spans_total", receiver="otlp", transport=transport
                        )
                        == 1
                    )
