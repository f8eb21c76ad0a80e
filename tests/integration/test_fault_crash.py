"""The promise of `delivery: durable`: a real `otlp-agent run` process, its backend down, clients sending,
the agent SIGKILLed mid-stream and started again — every span it acknowledged reaches the backend once it
comes back (duplicates allowed and counted, losses not)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.waiting import eventually

SPANS_PER_REQUEST = 20
CLIENTS = 4


def pipeline(backend: OtlpBackend) -> dict[str, Any]:
    exporter = {
        "name": "durable",
        "endpoint": backend.http_endpoint,
        "protocol": "http/protobuf",
        "compression": "none",
        "delivery": "durable",
        "queue": {"type": "persistent", "storageSize": "1Gi"},
        "retry": {"initialInterval": "20ms", "maxInterval": "200ms", "maxElapsed": "0s"},
    }
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "crash", "namespace": "tests"},
        "spec": {
            "receivers": {"otlp": {"grpc": {"enabled": False}}},
            "processors": {"batch": {"timeout": "20ms"}},
            "exporters": [exporter],
            "lifecycle": {"shutdownGracePeriod": "2s"},
        },
    }


def agent_process(folder: pathlib.Path, backend: OtlpBackend) -> AgentProcess:
    config = folder / "pipeline.yaml"
    config.write_text(yaml.safe_dump(pipeline(backend)))
    return AgentProcess(config, "--queue-dir", str(folder / "queue"))


async def metrics_text(agent: AgentProcess, session: aiohttp.ClientSession) -> str:
    async with session.get(agent.url("telemetry", "/metrics")) as response:
        return await response.text()


class Clients:
    """Clients sending spans with unique ids; `acknowledged` holds the ids the agent answered 200 for."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.url = ""  # set by the test once the agent is up (a restarted agent listens on a new port)
        self.acknowledged: set[bytes] = set()
        self.acknowledged_requests = 0
        self.failed_requests = 0
        self._next = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.agent_up = asyncio.Event()  # cleared by the test while the agent is down

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(CLIENTS)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _request(self) -> tuple[bytes, list[bytes]]:
        request = trace_service_pb2.ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        ids = []
        for _ in range(SPANS_PER_REQUEST):
            self._next += 1
            span_id = self._next.to_bytes(8, "big")
            scope.spans.add(name="work", trace_id=b"\x07" * 16, span_id=span_id)
            ids.append(span_id)
        return request.SerializeToString(), ids

    async def _loop(self) -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        while True:
            body, ids = self._request()
            try:
                async with self.session.post(self.url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                self.acknowledged.update(ids)
                self.acknowledged_requests += 1
            else:  # the agent is down or refused: a real client would retry; this one moves on
                self.failed_requests += 1
                await self.agent_up.wait()


@contextlib.asynccontextmanager
async def running(agent: AgentProcess, clients: Clients) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await clients.stop()
        agent.stop()


async def test_every_durably_acknowledged_span_survives_sigkill_restart_and_a_backend_outage(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend, aiohttp.ClientSession() as session:
        backend.default_fault = Fault.unavailable()  # the backend is down for the whole first part
        agent = agent_process(tmp_path, backend)
        clients = Clients(session)
        async with running(agent, clients):
            await agent.start()
            clients.url = agent.url("http", "/v1/traces")
            clients.agent_up.set()
            clients.start()
            await eventually(lambda: clients.acknowledged_requests >= 40, what="acknowledged requests")
            clients.agent_up.clear()
            agent.kill()  # mid-stream: clients are sending right now
            before_restart = len(clients.acknowledged)
            await agent.start()
            clients.url = agent.url("http", "/v1/traces")
            clients.agent_up.set()
            await eventually(
                lambda: len(clients.acknowledged) >= before_restart + 20 * SPANS_PER_REQUEST,
                what="requests acknowledged by the restarted agent",
            )
            await clients.stop()
            recovered = await metrics_text(agent, session)
            backend.clear_faults()  # the backend comes back
            delivered = await delivered_ids(backend, clients.acknowledged)
        duplicates = sum(count - 1 for count in delivered.values() if count > 1)
        print(f"acknowledged {len(clients.acknowledged)} spans, duplicates delivered: {duplicates}")
        assert clients.failed_requests > 0, "the kill happened while clients were sending"
        assert 'otlp_agent_queue_recovered_batches_total{exporter="durable"}' in recovered
        assert not clients.acknowledged - delivered.keys(), "an acknowledged span was lost"


async def delivered_ids(backend: OtlpBackend, expected: set[bytes]) -> collections.Counter[bytes]:
    """Wait until every expected span id reached the backend; how often each id arrived."""

    def arrived() -> collections.Counter[bytes]:
        return collections.Counter(span.span_id for _, _, span in backend.spans())

    await eventually(
        lambda: expected <= arrived().keys(), timeout=30, what="every acknowledged span delivered"
    )
    return arrived()
