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
import json
import os
import pathlib
import ssl
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
import trustme
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.otlp import wire
from otlp_agent.receivers import admission

from tests.support import agent_process
from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles
from tests.support.waiting import eventually, eventually_async

SCALE = float(os.environ.get("OTLP_HOSTILE_SCALE", "0.25"))
MiB = 1024 * 1024
FLOOD_ITEMS = int(8_000_000 * SCALE)
BIG_BODY = max(MiB, int(16 * MiB * SCALE))
CONCURRENT_BIG = 48
LIMIT_MIB = 64
#: The documented overhead above memoryLimiter.limit (docs/agent.md, "Memory").
OVERHEAD_MIB = 256
QUEUE_MAX_ITEMS = 5000
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def agent_spec(backend: OtlpBackend, **receivers: Any) -> dict[str, Any]:
    otlp: dict[str, dict[str, Any]] = {"grpc": {}, "http": {}}
    for kind, settings in receivers.items():
        otlp[kind].update(settings)
    exporter = {
        "name": "backend",
        "endpoint": backend.http_endpoint,
        "protocol": "http/protobuf",
        "compression": "none",
        "queue": {"maxItems": QUEUE_MAX_ITEMS, "maxBytes": "48Mi"},
    }
    return {
        "receivers": {"otlp": otlp},
        "processors": {
            "memoryLimiter": {"limit": f"{LIMIT_MIB}Mi", "spikeLimit": "16Mi"},
            "batch": {"maxItems": 2000, "timeout": "50ms"},
        },
        "exporters": [exporter],
        "lifecycle": {"shutdownGracePeriod": "5s"},
    }


def spans(names: list[str], attribute_bytes: int = 0) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index, name in enumerate(names):
        span = scope.spans.add(name=name, trace_id=b"\x05" * 16, span_id=(index + 1).to_bytes(8, "big"))
        if attribute_bytes:
            span.attributes.add(key="blob").value.string_value = "x" * attribute_bytes
    return bytes(request.SerializeToString())


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * len(values))]


def flood_of_empty_spans(count: int) -> bytes:
    return wire.length_delimited(1, wire.length_delimited(2, b"\x12\x00" * count))


def flood_of_empty_resources(count: int) -> bytes:
    return b"\x0a\x00" * count


def big_valid_body(size: int) -> bytes:
    per_span = 256 * 1024
    return spans([f"big-{i}" for i in range(max(1, size // per_span))], per_span - 100)


class GoodClients:
    """Well-behaved clients on a thread of their own (so the floods the test sends do not delay them):
    small requests of uniquely named spans over HTTP and gRPC, sent again after a retryable refusal.
    Records each answer's latency and the names the agent acknowledged."""

    def __init__(self, http_url: str, grpc_target: str, per_transport: int = 2) -> None:
        self.http_url = http_url
        self.grpc_target = grpc_target
        self.per_transport = per_transport
        self.latencies: list[float] = []
        self.acknowledged: list[str] = []
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._next = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="good-clients")

    def __enter__(self) -> GoodClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _names(self) -> list[str]:
        self._next += 10
        return [f"good-{self._next - i}" for i in range(10)]

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session, grpc.aio.insecure_channel(self.grpc_target) as channel:
            export = channel.unary_unary(TRACES)
            loops = [self._http(session) for _ in range(self.per_transport)]
            loops += [self._grpc(export) for _ in range(self.per_transport)]
            await asyncio.gather(*loops)

    async def _http(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            names = self._names()
            while not self._stop.is_set():
                started = time.monotonic()
                async with session.post(self.http_url, data=spans(names), headers=PROTOBUF) as response:
                    await response.read()
                self.latencies.append(time.monotonic() - started)
                if response.status == 200:
                    self.acknowledged += names
                    break
                if response.status != 503:
                    self.unexpected.append(f"HTTP {response.status}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)

    async def _grpc(self, export: Any) -> None:
        while not self._stop.is_set():
            names = self._names()
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    await export(spans(names), timeout=30)
                except grpc.aio.AioRpcError as exc:
                    self.latencies.append(time.monotonic() - started)
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        self.unexpected.append(f"gRPC {exc.code()}")
                    await asyncio.sleep(0.05)
                    continue
                self.latencies.append(time.monotonic() - started)
                self.acknowledged += names
                break
            await asyncio.sleep(0.02)


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
    async with session.post(url, data=body, headers=PROTOBUF) as response:
        from google.rpc import status_pb2

        raw = await response.read()
        message = status_pb2.Status.FromString(raw).message if response.status != 200 else ""
        return response.status, message


async def grpc_call(target: str, body: bytes) -> tuple[grpc.StatusCode, str, bool]:
    """(code, details, whether RetryInfo came along)."""
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * MiB)]
    ) as channel:
        try:
            await channel.unary_unary(TRACES)(body, timeout=60)
        except grpc.aio.AioRpcError as exc:
            trailers = exc.trailing_metadata() or ()
            has_retry_info = any(key == "grpc-status-details-bin" for key, _ in trailers)
            return exc.code(), exc.details() or "", has_retry_info
        return grpc.StatusCode.OK, "", False


def write_config(folder: pathlib.Path, spec: dict[str, Any]) -> pathlib.Path:
    config = folder / "pipeline.yaml"
    manifest = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "hostile", "namespace": "tests"},
        "spec": spec,
    }
    config.write_text(yaml.safe_dump(manifest))
    return config


def peak_rss_mib(agent: agent_process.AgentProcess) -> float:
    """VmHWM: the agent process's peak resident set, from /proc."""
    for line in pathlib.Path(f"/proc/{agent.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def non_json_lines(agent: agent_process.AgentProcess) -> list[str]:
    """Lines of the agent's output that are not JSON objects (there should be none)."""
    bad = []
    for line in agent.log_text().splitlines():
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad


async def metric(session: aiohttp.ClientSession, agent: agent_process.AgentProcess, name: str) -> float:
    """An unlabelled sample's value from the agent's /metrics (0 when absent)."""
    async with session.get(agent.url("telemetry", "/metrics")) as response:
        text = await response.text()
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend(keep_bodies=True) as started:
        yield started


async def test_floods_and_concurrent_large_bodies_cost_bounded_memory_and_others_keep_being_served(
    tmp_path: pathlib.Path, backend: OtlpBackend
) -> None:
    agent = AgentProcess(write_config(tmp_path, agent_spec(backend)))
    await agent.start()
    http_url = agent.url("http", "/v1/traces")
    grpc_target = f"127.0.0.1:{agent.port('grpc')}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            floods = {
                "spans": flood_of_empty_spans(FLOOD_ITEMS),
                "resources": flood_of_empty_resources(FLOOD_ITEMS),
            }
            big = big_valid_body(BIG_BODY)
            with GoodClients(http_url, grpc_target) as good:
                await eventually(lambda: len(good.acknowledged) >= 40, what="good clients served")
                quiet = len(good.latencies)

                # Item floods: refused for good, before a parse of the whole, naming the limit.
                for kind, flood in floods.items():
                    status, message = await post(session, http_url, flood)
                    assert status == 413 and "maxItemsPerRequest" in message, (kind, status, message)
                    code, details, retry_info = await grpc_call(grpc_target, flood)
                    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and not retry_info, (kind, code)
                    assert "maxItemsPerRequest" in details

                # Larger than the exporter's queue can ever hold: refused for good, naming the queue's bounds.
                too_many = spans([f"q-{i}" for i in range(QUEUE_MAX_ITEMS + 1)])
                status, message = await post(session, http_url, too_many)
                assert status == 413 and f"maxItems {QUEUE_MAX_ITEMS}" in message, (status, message)
                code, details, retry_info = await grpc_call(grpc_target, too_many)
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and not retry_info
                assert f"maxItems {QUEUE_MAX_ITEMS}" in details

                # 48 concurrent large valid bodies, over HTTP, then over gRPC: each is taken, or refused
                # as retryable (never cut off, never an error).
                statuses = await asyncio.gather(
                    *(post(session, http_url, big) for _ in range(CONCURRENT_BIG))
                )
                assert {status for status, _ in statuses} <= {200, 503}, statuses
                assert any(status == 200 for status, _ in statuses)
                calls = await asyncio.gather(*(grpc_call(grpc_target, big) for _ in range(CONCURRENT_BIG)))
                codes = collections.Counter(code for code, _, _ in calls)
                assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
                during = good.latencies[quiet:]
            peak = peak_rss_mib(agent)

            # Every span a good client was told was accepted reaches the backend, exactly once.
            acknowledged = collections.Counter(good.acknowledged)
            assert all(count == 1 for count in acknowledged.values())

            def delivered() -> collections.Counter[str]:
                return collections.Counter(
                    span.name for _, _, span in backend.spans() if span.name.startswith("good-")
                )

            await eventually(
                lambda: set(acknowledged) <= set(delivered()),
                timeout=60,
                what="acknowledged spans at the backend",
            )
            duplicated = {name: n for name, n in delivered().items() if n > 1}
            assert not duplicated, f"delivered more than once: {sorted(duplicated)[:5]}"
            assert not good.unexpected, good.unexpected[:5]
    finally:
        agent.stop()

    print(  # shown with -s: the numbers docs/agent.md quotes for the full-size run
        f"scale {SCALE}: peak RSS {peak:.0f} MiB (limit {LIMIT_MIB} MiB); good clients during the floods: "
        f"{len(during)} answers, median {statistics.median(during) * 1000:.0f} ms, "
        f"p90 {_p90(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms"
    )
    assert peak <= LIMIT_MIB + OVERHEAD_MIB, f"peak RSS {peak:.0f} MiB"
    # Other clients were answered throughout: generous bounds that only an event loop held for seconds
    # (an unbounded agent at this scale: ~1-3 s per flood) would break.
    assert len(during) >= 20, f"good clients got only {len(during)} answers during the floods"
    assert statistics.median(during) < 0.5, f"median latency {statistics.median(during):.2f}s"
    assert _p90(during) < 3.0, f"p90 latency {_p90(during):.2f}s"
    # The slowest: a gRPC call waiting for its reservation (maxMessageSize) the full 5 s, then 503.
    assert max(during) < admission.RESERVE_WAIT + 5.0, f"slowest answer {max(during):.2f}s"
    assert not non_json_lines(agent), non_json_lines(agent)[:5]


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
    spec = agent_spec(backend, grpc=dict(tls), http=dict(tls))
    env = {**os.environ, "OTLP_AGENT_SECRETS_DIR": str(files.root)}
    agent = AgentProcess(write_config(tmp_path, spec), env=env)
    await agent.start()
    grpc_port, http_port = agent.port("grpc"), agent.port("http")
    try:
        async with aiohttp.ClientSession() as session:
            # Slow handshakes: connections that never send a ClientHello are closed after readTimeout (1s),
            # on both ports (asyncio's default would hold them for 60 s, grpc's for 120 s).
            started = time.monotonic()
            silent = await _held_open(http_port, 20) + await _held_open(grpc_port, 20)
            await asyncio.wait_for(asyncio.gather(*map(_closed_by_the_server, silent)), timeout=30)
            assert time.monotonic() - started < 30

            # Garbage instead of a TLS handshake, 300 times: grpc core reports each failure on stderr; the
            # agent's log stays JSON and rate-limited, and every line is counted.
            garbage = await _held_open(grpc_port, 300, b"\x16\x03\x01\x00\x05hello" + os.urandom(64))
            await asyncio.wait_for(asyncio.gather(*map(_closed_by_the_server, garbage)), timeout=60)

            async def counted() -> bool:
                return await metric(session, agent, "otlp_agent_native_log_lines_total") > 0

            await eventually_async(counted, timeout=10, what="grpc core's lines counted")

            # A well-behaved TLS client is still served.
            context = ssl.create_default_context()
            ca.configure_trust(context)
            url = f"https://127.0.0.1:{http_port}/v1/traces"
            async with session.post(url, data=spans(["tls-ok"]), headers=PROTOBUF, ssl=context) as response:
                assert response.status == 200
    finally:
        agent.stop()
    lines = agent.log_text().splitlines()
    assert not non_json_lines(agent), non_json_lines(agent)[:5]
    native = [line for line in lines if '"native_log"' in line]
    assert 1 <= len(native) <= 5, f"{len(native)} native log lines for 300 bad handshakes"
