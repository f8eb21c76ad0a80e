"""Fuzzing both receivers of a real agent process with hypothesis: every answer is a 4xx / INVALID_ARGUMENT-
class status (or success for valid input), the agent never crashes, its RSS stays bounded, and valid traffic
sent at the same time arrives intact.

The agent runs as a subprocess so that a crash is a dead process and RSS is the agent's alone, C allocations
(grpc, upb, zlib, zstd) included — tracemalloc would miss exactly those. The CI run is fixed: a derandomized
hypothesis run of OTLP_FUZZ_EXAMPLES examples (default 400) of 25-32 requests each, so at least 10,000
requests; set OTLP_FUZZ_EXAMPLES higher for a longer run (the seed is fixed, so more examples are a superset).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import pathlib
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import grpc
import grpc.aio
import orjson
import psutil
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import secret_mounts
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import otlp_json

from tests.support import fuzz_requests
from tests.support.agent_process import AgentProcess
from tests.support.fuzz_requests import TOKEN, FuzzRequest
from tests.support.otlp_backend import OtlpBackend
from tests.support.secret_files import SecretFiles
from tests.support.waiting import eventually_async

EXAMPLES = int(os.environ.get("OTLP_FUZZ_EXAMPLES", "400"))
PER_EXAMPLE = (25, 32)  # requests per example: the default run sends at least 400 x 25 = 10,000
#: Examples whose requests are in flight at once: a slow answer (grpc's oversized calls) stalls no one.
BATCHES_IN_FLIGHT = 16
#: The agent's RSS may grow by at most this over its warmed-up size (see test_fuzz docstring for why).
RSS_GROWTH_BOUND = 64 * 1024 * 1024
HTTP_ANSWERS = {200, 400, 401, 404, 405, 413, 415}
GRPC_ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED,
}
T = TypeVar("T")


class ClientLoop:
    """An event loop in a thread, holding the HTTP session and the gRPC channel the fuzzer sends with."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-clients", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclasses.dataclass
class Target:
    """The agent process under fuzz and what the test needs to talk to it."""

    agent: AgentProcess
    backend: OtlpBackend
    clients: ClientLoop
    session: aiohttp.ClientSession | None = None
    channel: grpc.aio.Channel | None = None
    sent: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.agent.process is not None
        return self.agent.process

    @property
    def stderr(self) -> pathlib.Path:
        return self.agent.log

    @property
    def grpc_port(self) -> int:
        return self.agent.port("grpc")

    @property
    def http_port(self) -> int:
        return self.agent.port("http")

    @property
    def telemetry_port(self) -> int:
        return self.agent.port("telemetry")

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


def agent_config(backend: OtlpBackend) -> dict[str, Any]:
    auth = {"bearerTokenSecret": {"name": "fuzz-token", "key": "token"}}
    limit = fuzz_requests.LIMIT
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "fuzzed", "namespace": "tests"},
        "spec": {
            "receivers": {
                "otlp": {
                    "grpc": {"maxMessageSize": limit, "auth": auth},
                    "http": {"maxBodySize": limit, "auth": auth, "readTimeout": "5s"},
                }
            },
            "processors": {
                "batch": {"timeout": "10ms"},
                "memoryLimiter": {"limit": "32Mi", "spikeLimit": "8Mi"},
            },
            "exporters": [
                {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
            ],
            "telemetry": {"logLevel": "info"},
        },
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("fuzz")
    SecretFiles(folder / "secrets").write("fuzz-token", token=TOKEN.encode())
    with OtlpBackend() as backend:
        config = folder / "pipeline.yaml"
        config.write_text(yaml.safe_dump(agent_config(backend)))
        env = {**os.environ, secret_mounts.ENV_DIR: str(folder / "secrets")}
        clients = ClientLoop()
        running = Target(AgentProcess(config, env=env), backend, clients)
        try:
            clients.run(_connect(running), timeout=60)
            yield running
        finally:
            with contextlib.suppress(Exception):
                clients.run(_disconnect(running), timeout=10)
            clients.close()
            running.agent.stop()


async def _connect(target: Target) -> None:
    await target.agent.start()
    target.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32), auto_decompress=False)
    target.channel = grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}")


async def _disconnect(target: Target) -> None:
    if target.session is not None:
        await target.session.close()
    if target.channel is not None:
        await target.channel.close()


# -- sending ---------------------------------------------------------------------------------------------


async def send(target: Target, request: FuzzRequest) -> str:
    """Send one request; return a description of a wrong answer, or "" when the answer is acceptable."""
    if request.transport == "http":
        return await _send_http(target, request)
    if request.transport == "grpc":
        return await _send_grpc(target, request)
    return await _send_raw(target, request)


def _authorized(request: FuzzRequest) -> bool:
    return any(
        key.lower() == "authorization" and value == f"Bearer {TOKEN}" for key, value in request.headers
    )


async def _send_http(target: Target, request: FuzzRequest) -> str:
    assert target.session is not None
    url = f"http://127.0.0.1:{target.http_port}{request.path}"
    async with target.session.request(
        request.method,
        url,
        data=request.body,
        headers=dict(request.headers),
        skip_auto_headers=["Content-Type"],
    ) as response:
        answer = await response.read()
        status = response.status
    target.outcomes[f"http {status}"] = target.outcomes.get(f"http {status}", 0) + 1
    routed = request.method == "POST" and request.path in {f"/v1/{s.value}" for s in Signal}
    if status not in HTTP_ANSWERS:
        return f"HTTP {status}"
    if request.valid and status != 200:
        return f"valid request answered {status}: {answer[:200]!r} to {request.headers}"
    if routed and not _authorized(request) and status != 401:
        return f"unauthorized request answered {status}"
    if routed and request.kind.startswith("http-bomb") and _authorized(request) and status not in (413, 415):
        return f"compression bomb answered {status}"
    return ""


async def _send_grpc(target: Target, request: FuzzRequest) -> str:
    assert target.channel is not None
    compression = {"none": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip}.get(
        request.compression, grpc.Compression.Deflate
    )
    try:
        await target.channel.unary_unary(request.path)(
            request.body, timeout=20, metadata=request.headers, compression=compression
        )
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    target.outcomes[f"grpc {code.name}"] = target.outcomes.get(f"grpc {code.name}", 0) + 1
    known_method = request.path.endswith("Service/Export")
    if code not in GRPC_ANSWERS:
        return f"gRPC {code.name}"
    if request.valid and code != grpc.StatusCode.OK:
        return f"valid request answered {code.name}"
    # grpc enforces maxMessageSize while receiving, before any handler: oversized calls are refused first.
    refusals = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED)
    if known_method and not _authorized(request) and code not in refusals:
        return f"unauthorized request answered {code.name}"
    return ""


async def _send_raw(target: Target, request: FuzzRequest) -> str:
    port = target.http_port if request.transport == "raw-http" else target.grpc_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.body)
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(64), 10)
    except OSError:  # the agent closed the connection first
        answer = b""
    finally:
        writer.close()
    outcome = answer[:12].decode("latin-1") if answer.startswith(b"HTTP/1.") else "closed or binary"
    target.outcomes[f"{request.transport} {outcome}"] = (
        target.outcomes.get(f"{request.transport} {outcome}", 0) + 1
    )
    if answer.startswith(b"HTTP/1.") and answer[9:10] != b"4":
        return f"raw request answered {answer[:12]!r}"
    return ""


# -- canary traffic --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Canary:
    """Valid spans sent along with every batch of fuzzed requests, over gRPC, HTTP protobuf and HTTP JSON."""

    sent: dict[str, bytes] = dataclasses.field(default_factory=dict)

    async def send_one(self, target: Target) -> str:
        number = len(self.sent)
        name = f"canary-{number}"
        request = trace_service_pb2.ExportTraceServiceRequest()
        span = (
            request.resource_spans.add()
            .scope_spans.add()
            .spans.add(
                name=name, trace_id=number.to_bytes(16, "big"), span_id=(number + 1).to_bytes(8, "big")
            )
        )
        span.attributes.add(key="number").value.int_value = number
        span.attributes.add(key="text").value.string_value = "åß∂ canary " * 4
        self.sent[name] = span.SerializeToString()
        return await self._deliver(target, ("grpc", "http-protobuf", "http-json")[number % 3], request)

    async def _deliver(self, target: Target, way: str, request: Any) -> str:
        assert target.session is not None and target.channel is not None
        if way == "grpc":
            await target.channel.unary_unary(f"/{fuzz_requests.SERVICES[Signal.traces]}/Export")(
                request.SerializeToString(), timeout=20, metadata=(("authorization", f"Bearer {TOKEN}"),)
            )
            return ""
        json = way == "http-json"
        body = otlp_json.to_json(request) if json else request.SerializeToString()
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json" if json else "application/x-protobuf",
        }
        url = f"http://127.0.0.1:{target.http_port}/v1/traces"
        async with target.session.post(url, data=body, headers=headers) as response:
            return "" if response.status == 200 else f"canary answered {response.status}"

    def arrived(self, target: Target) -> dict[str, bytes]:
        return {
            span.name: span.SerializeToString()
            for _, _, span in target.backend.spans()
            if span.name.startswith("canary-")
        }


async def send_batch(target: Target, batch: list[FuzzRequest], canary: Canary) -> list[str]:
    """Send a batch of fuzzed requests and one canary at the same time; descriptions of wrong answers."""
    sends = [send(target, request) for request in batch] + [canary.send_one(target)]
    results = await asyncio.gather(*sends, return_exceptions=True)
    kinds = [request.kind for request in batch] + ["canary"]
    return [
        f"{kind}: {result!r}" if isinstance(result, BaseException) else f"{kind}: {result}"
        for kind, result in zip(kinds, results, strict=True)
        if isinstance(result, BaseException) or result
    ]


# -- the test --------------------------------------------------------------------------------------------


def test_fuzzed_receivers_answer_4xx_never_crash_stay_bounded_and_keep_serving_valid_traffic(
    target: Target,
) -> None:
    """RSS bound: the agent holds at most maxBodySize (256 KiB) per request in flight (32 HTTP connections
    plus grpc's 100 concurrent streams: ~33 MiB) and what the memory limiter admits for queued data (32 MiB,
    little of it used: the backend is fast). 64 MiB over the warmed-up size; measured: ~16 MiB. Decoding one
    of the ~270 compression bombs without a bound would cost 16 MiB each."""
    canary = Canary()
    baseline = peak = target.rss
    wrong: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(fuzz_requests.requests, min_size=PER_EXAMPLE[0], max_size=PER_EXAMPLE[1]))
    def throw(batch: list[FuzzRequest]) -> None:
        nonlocal peak
        while len(in_flight) >= BATCHES_IN_FLIGHT:
            wrong.extend(in_flight.popleft().result(60))
        in_flight.append(
            asyncio.run_coroutine_threadsafe(send_batch(target, batch, canary), target.clients.loop)
        )
        target.sent += len(batch)
        assert target.process.poll() is None, "the agent process died"
        peak = max(peak, target.rss)

    in_flight: collections.deque[concurrent.futures.Future[list[str]]] = collections.deque()
    throw()
    while in_flight:
        wrong.extend(in_flight.popleft().result(60))
    peak = max(peak, target.rss)
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {sorted(set(wrong))[:20]}"
    _assert_canaries_arrived_intact(target, canary)
    assert target.sent >= EXAMPLES * PER_EXAMPLE[0]
    assert peak - baseline < RSS_GROWTH_BOUND, f"RSS grew from {baseline >> 20} MiB to {peak >> 20} MiB"
    assert target.process.poll() is None
    log = target.stderr.read_text()
    assert "Traceback" not in log and '"level":"error"' not in log, log[-3000:]
    print(f"\nfuzz: {target.sent} requests, RSS {baseline >> 20} -> peak {peak >> 20} MiB, {target.outcomes}")


def _assert_canaries_arrived_intact(target: Target, canary: Canary) -> None:
    async def all_arrived() -> bool:
        return len(canary.arrived(target)) >= len(canary.sent)

    target.clients.run(eventually_async(all_arrived, timeout=30, what="every canary at the backend"))
    assert canary.arrived(target) == canary.sent


def test_the_fuzzed_agent_counted_every_refusal_class(target: Target) -> None:
    """Runs after the fuzz (same module): the refusals were counted by reason, so they are visible."""

    async def scrape() -> str:
        assert target.session is not None
        async with target.session.get(f"http://127.0.0.1:{target.telemetry_port}/metrics") as response:
            return await response.text()

    metrics = target.clients.run(scrape())
    for reason in ("malformed", "too_large", "unsupported_media_type", "unauthenticated"):
        assert f'reason="{reason}"' in metrics, reason
    assert orjson.dumps(target.outcomes)
