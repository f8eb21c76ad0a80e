"""Config reloads while clients send: requests the old pipeline is still taking when a reload comes (a
request larger than a batch is split on the worker thread, so it is mid-await) are in its batchers before
they are flushed and a persistent queue is handed over through its file. No client hears an error, and
every span answered 200 reaches the backend, through the handed-over persistent queue and through the
memory queue the old pipeline drains."""

from __future__ import annotations

import asyncio
import collections
import pathlib
from collections.abc import Iterator

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import loader
from otlp_agent.process import agent as agent_module

from tests.support.agent_runner import RunningAgent, pipeline_manifest, pipeline_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.waiting import eventually

SPANS = 1000  # per request: four batches of `maxItems` 256, so each request is split (off the loop)
CLIENTS = 3
RELOADS = 10
SpanId = tuple[bytes, bytes]  # (trace id, span id)


def pipeline(durable_endpoint: str, memory_endpoint: str, generation: int) -> loader.OTLPPipeline:
    """The same exporters every time (the persistent one is handed over); the batch timeout changes, so
    each generation is a new config."""
    retry = {"initialInterval": "10ms", "maxInterval": "50ms", "maxElapsed": "0s"}
    exporters = [
        {
            "name": "on-disk",
            "endpoint": durable_endpoint,
            "protocol": "http/protobuf",
            "retry": retry,
            "queue": {"type": "persistent", "storageSize": "1Gi"},
        },
        {"name": "in-memory", "endpoint": memory_endpoint, "protocol": "http/protobuf", "retry": retry},
    ]
    return loader.load_document(
        pipeline_manifest(
            {
                "receivers": {"otlp": {"grpc": {"enabled": False}}},
                "processors": {"batch": {"timeout": f"{20 + generation}ms", "maxItems": 256}},
                "exporters": exporters,
                "lifecycle": {"shutdownGracePeriod": "10s"},
            }
        )
    )


def request(client: int, number: int) -> tuple[bytes, set[SpanId]]:
    """A request of `SPANS` spans no other request has, and their ids."""
    message = trace_service_pb2.ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    trace_id = client.to_bytes(4, "big") + number.to_bytes(12, "big")
    for index in range(SPANS):
        scope.spans.add(name="s", trace_id=trace_id, span_id=(index + 1).to_bytes(8, "big"))
    return message.SerializeToString(), {(trace_id, (i + 1).to_bytes(8, "big")) for i in range(SPANS)}


class Clients:
    """`CLIENTS` clients, each sending one request after the other until `stop`."""

    def __init__(self, agent: RunningAgent) -> None:
        self.agent = agent
        self.answered: list[int] = []  # every status, in order
        self.acknowledged: set[SpanId] = set()
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._send(client)) for client in range(CLIENTS)]

    async def _send(self, client: int) -> None:
        url = f"{self.agent.http_endpoint}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for number in _count():
                if self._stopping.is_set():
                    return
                body, ids = request(client, number)
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    self.answered.append(response.status)
                if response.status == 200:
                    self.acknowledged |= ids

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)


def _count() -> Iterator[int]:
    number = 0
    while True:
        yield number
        number += 1


def delivered(backend: OtlpBackend) -> set[SpanId]:
    return {(span.trace_id, span.span_id) for _, _, span in backend.spans()}


async def wait_until_delivered(backend: OtlpBackend, expected: set[SpanId], what: str) -> None:
    """Wait until every span of `expected` reached `backend` (the spans are compared only once at least as
    many arrived: parsing every recorded request is not cheap)."""
    count = len(expected)
    while True:
        try:
            await backend.wait_for_items_async("traces", count, timeout=60)
        except AssertionError:
            missing = expected - delivered(backend)
            raise AssertionError(f"{what}: {len(missing)} spans answered 200 never arrived") from None
        arrived = backend.accepted_items(
            "traces"
        )  # before the spans are read: what is missing then came later
        if not (missing := expected - delivered(backend)):
            return
        count = arrived + len(missing)  # duplicates arrived meanwhile; the missing ones may still come


async def reload_under_load(on_disk: OtlpBackend, in_memory: OtlpBackend, agent: RunningAgent) -> Clients:
    """`RELOADS` reloads while the clients send; the clients, stopped."""
    clients = Clients(agent)
    try:
        for generation in range(1, RELOADS + 1):
            # Reload while the clients are busy: a few more answers since the last one.
            seen = len(clients.answered)
            await eventually(lambda: len(clients.answered) >= seen + CLIENTS, 60, "answers")  # noqa: B023
            assert await agent.agent.reload(
                pipeline(on_disk.http_endpoint, in_memory.http_endpoint, generation)
            )
    finally:
        await clients.stop()
    return clients


async def test_reloads_under_load_lose_nothing_answered_and_answer_no_error(tmp_path: pathlib.Path) -> None:
    async with OtlpBackend() as on_disk, OtlpBackend() as in_memory:
        config = pipeline(on_disk.http_endpoint, in_memory.http_endpoint, 0)
        async with pipeline_running(config, queue_dir=tmp_path) as agent:
            clients = await reload_under_load(on_disk, in_memory, agent)
            assert set(clients.answered) == {200}, (
                f"answers by status: {collections.Counter(clients.answered)}"
            )
            assert agent.metric("otlp_agent_config_reload_late_requests_total") == 0
            await wait_until_delivered(on_disk, clients.acknowledged, "persistent queue (handed over)")
            await wait_until_delivered(in_memory, clients.acknowledged, "memory queue (drained)")


async def test_requests_a_reload_stops_waiting_for_are_refused_or_delivered_never_lost(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time at all for requests in progress, every reload goes on without them: those whose parts
    reach the handed-over persistent queue afterwards are refused (retryable, counted as `reload`); every
    span answered 200 still arrives at both backends."""
    monkeypatch.setattr(agent_module, "_RELOAD_ENTRY_GRACE", 0.0)
    async with OtlpBackend() as on_disk, OtlpBackend() as in_memory:
        config = pipeline(on_disk.http_endpoint, in_memory.http_endpoint, 0)
        async with pipeline_running(config, queue_dir=tmp_path) as agent:
            clients = await reload_under_load(on_disk, in_memory, agent)
            answers = collections.Counter(clients.answered)
            assert set(answers) <= {200, 503}, f"answers by status: {answers}"
            refused = agent.metric(
                "otlp_agent_refused_requests_total", signal="traces", transport="http", reason="reload"
            )
            assert refused == answers[503]
            assert agent.metric("otlp_agent_config_reload_late_requests_total") >= 1, "the case was met"
            await wait_until_delivered(on_disk, clients.acknowledged, "persistent queue (handed over)")
            await wait_until_delivered(in_memory, clients.acknowledged, "memory queue (drained)")
