"""A real `otlp-agent run` process under hostile input, judged as an operator would: peak memory (VmHWM from
/proc) stays under the memory limit plus the documented overhead, well-behaved clients keep being answered
quickly and their data reaches a real backend exactly once, every refusal tells the truth about retrying,
slow handshakes are cut off, and grpc core's log lines cannot flood the log.

`OTLP_HOSTILE_SCALE` scales the floods (1.0 = the sizes of issue 14: ~8M empty spans or resource entries in
15-16 MiB, 48 concurrent 16 MiB bodies). The default, 0.25, keeps CI short while a flood still costs an
unbounded agent several times the memory bound (2M empty spans: ~340 MB of upb arena in one parse). The
full-size run: `OTLP_HOSTILE_SCALE=1 .venv/bin/pytest -q tests/integration/test_hostile_agent.py`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import pathlib
import ssl
import statistics
from collections.abc import Iterator

import aiohttp
import grpc
import grpc.aio
import pytest
import trustme
from otlp_agent.receivers import admission

from tests.support import hostile
from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles
from tests.support.waiting import eventually, eventually_async

CONCURRENT_BIG = 48


async def grpc_call(target: str, body: bytes) -> tuple[grpc.StatusCode, str, bool]:
    """(code, details, whether RetryInfo came along)."""
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * hostile.MiB)]
    ) as channel:
        try:
            await channel.unary_unary(hostile.TRACES)(body, timeout=60)
        except grpc.aio.AioRpcError as exc:
            trailers = exc.trailing_metadata() or ()
            has_retry_info = any(key == "grpc-status-details-bin" for key, _ in trailers)
            return exc.code(), exc.details() or "", has_retry_info
        return grpc.StatusCode.OK, "", False


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend(keep_bodies=True) as started:
        yield started


async def test_floods_and_concurrent_large_bodies_cost_bounded_memory_and_others_keep_being_served(
    tmp_path: pathlib.Path, backend: OtlpBackend
) -> None:
    agent = AgentProcess(hostile.write_config(tmp_path, hostile.agent_spec(backend)))
    await agent.start()
    http_url = agent.url("http", "/v1/traces")
    grpc_target = f"127.0.0.1:{agent.port('grpc')}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            floods = {
                "spans": hostile.flood_of_empty_spans(hostile.FLOOD_ITEMS),
                "resources": hostile.flood_of_empty_resources(hostile.FLOOD_ITEMS),
            }
            big = hostile.big_valid_body(hostile.BIG_BODY)
            with hostile.GoodClients(http_url, grpc_target) as good:
                await eventually(lambda: len(good.acknowledged) >= 40, what="good clients served")
                quiet = len(good.latencies)

                # Item floods: refused for good, before a parse of the whole, naming the limit.
                for kind, flood in floods.items():
                    status, message = await hostile.post(session, http_url, flood)
                    assert status == 413 and "maxItemsPerRequest" in message, (kind, status, message)
                    code, details, retry_info = await grpc_call(grpc_target, flood)
                    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and not retry_info, (kind, code)
                    assert "maxItemsPerRequest" in details

                # Larger than the exporter's queue can ever hold: refused for good, naming the queue's bounds.
                too_many = hostile.spans([f"q-{i}" for i in range(hostile.QUEUE_MAX_ITEMS + 1)])
                status, message = await hostile.post(session, http_url, too_many)
                assert status == 413 and f"maxItems {hostile.QUEUE_MAX_ITEMS}" in message, (status, message)
                code, details, retry_info = await grpc_call(grpc_target, too_many)
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and not retry_info
                assert f"maxItems {hostile.QUEUE_MAX_ITEMS}" in details

                # 48 concurrent large valid bodies, over HTTP, then over gRPC: each is taken, or refused
                # as retryable (never cut off, never an error).
                statuses = await asyncio.gather(
                    *(hostile.post(session, http_url, big) for _ in range(CONCURRENT_BIG))
                )
                assert {status for status, _ in statuses} <= {200, 503}, statuses
                assert any(status == 200 for status, _ in statuses)
                calls = await asyncio.gather(*(grpc_call(grpc_target, big) for _ in range(CONCURRENT_BIG)))
                codes = collections.Counter(code for code, _, _ in calls)
                assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
                during = good.latencies[quiet:]
            peak = hostile.peak_rss_mib(agent)

            await hostile.assert_delivered_once(backend, good.acknowledged)
            assert not good.unexpected, good.unexpected[:5]
    finally:
        agent.stop()

    print(  # shown with -s: the numbers docs/agent.md quotes for the full-size run
        f"scale {hostile.SCALE}: peak RSS {peak:.0f} MiB (limit {hostile.LIMIT_MIB} MiB); "
        "good clients during the floods: "
        f"{len(during)} answers, median {statistics.median(during) * 1000:.0f} ms, "
        f"p90 {hostile.p90(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms"
    )
    assert peak <= hostile.LIMIT_MIB + hostile.OVERHEAD_MIB, f"peak RSS {peak:.0f} MiB"
    # Other clients were answered throughout: generous bounds that only an event loop held for seconds
    # (an unbounded agent at this scale: ~1-3 s per flood) would break.
    assert len(during) >= 20, f"good clients got only {len(during)} answers during the floods"
    assert statistics.median(during) < 0.5, f"median latency {statistics.median(during):.2f}s"
    assert hostile.p90(during) < 3.0, f"p90 latency {hostile.p90(during):.2f}s"
    # The slowest: a gRPC call waiting for its reservation (maxMessageSize) the full 5 s, then 503.
    assert max(during) < admission.RESERVE_WAIT + 5.0, f"slowest answer {max(during):.2f}s"
    assert not hostile.non_json_lines(agent), hostile.non_json_lines(agent)[:5]


@pytest.fixture
def tls_secrets(tmp_path: pathlib.Path) -> tuple[SecretFiles, trustme.CA]:
    files = SecretFiles(tmp_path / "secrets")
    ca = trustme.CA()
    files.write_tls("agent-tls", ca.issue_cert("127.0.0.1", "localhost"))
    return files, ca


async def _held_open(port: int, count: int, payload: bytes = b"") -> list[asyncio.StreamReader]:
    """`count` connections that send `payload` (nothing: a client that never starts its TLS handshake)."""
    readers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if payload:
            writer.write(payload)
        readers.append(reader)
    return readers


async def _closed_by_the_server(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


async def test_slow_tls_handshakes_are_cut_off_and_grpc_core_cannot_flood_the_log(
    tmp_path: pathlib.Path, backend: OtlpBackend, tls_secrets: tuple[SecretFiles, trustme.CA]
) -> None:
    files, ca = tls_secrets
    tls = {"tls": {"certSecret": "agent-tls"}, "readTimeout": "1s"}
    spec = hostile.agent_spec(backend, grpc=dict(tls), http=dict(tls))
    env = {**os.environ, "OTLP_AGENT_SECRETS_DIR": str(files.root)}
    agent = AgentProcess(hostile.write_config(tmp_path, spec), env=env)
    await agent.start()
    grpc_port, http_port = agent.port("grpc"), agent.port("http")
    try:
        async with aiohttp.ClientSession() as session:
            # Slow handshakes: connections that never send a ClientHello are closed after readTimeout (1s),
            # on both ports (asyncio's default would hold them for 60 s, grpc's for 120 s).
            # (The timeout only catches a hang: the server closing them is what is asserted.)
            silent = await _held_open(http_port, 20) + await _held_open(grpc_port, 20)
            await asyncio.wait_for(asyncio.gather(*map(_closed_by_the_server, silent)), timeout=30)

            # Garbage instead of a TLS handshake, 300 times: grpc core reports each failure on stderr; the
            # agent's log stays JSON and rate-limited, and every line is counted.
            garbage = await _held_open(grpc_port, 300, b"\x16\x03\x01\x00\x05hello" + os.urandom(64))
            await asyncio.wait_for(asyncio.gather(*map(_closed_by_the_server, garbage)), timeout=60)

            async def counted() -> bool:
                return (await agent.samples(session)).get("otlp_agent_native_log_lines_total", 0) > 0

            await eventually_async(counted, timeout=10, what="grpc core's lines counted")

            # A well-behaved TLS client is still served.
            context = ssl.create_default_context()
            ca.configure_trust(context)
            url = f"https://127.0.0.1:{http_port}/v1/traces"
            async with session.post(
                url, data=hostile.spans(["tls-ok"]), headers=hostile.PROTOBUF, ssl=context
            ) as response:
                assert response.status == 200
    finally:
        agent.stop()
    lines = agent.log_text().splitlines()
    assert not hostile.non_json_lines(agent), hostile.non_json_lines(agent)[:5]
    native = [line for line in lines if '"native_log"' in line]
    assert 1 <= len(native) <= 5, f"{len(native)} native log lines for 300 bad handshakes"
