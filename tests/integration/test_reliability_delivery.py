"""The agent's reliability as a client and an operator see it: failover to a live endpoint, a circuit that
stops hammering a dead backend while the queue keeps the data, when durable and endToEnd clients are
answered, and a shutdown that leaves a persistent queue's backlog on disk for the next start."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
from typing import Any

import aiohttp

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.network import RefusingPort
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.trace_requests import post, request_bytes
from tests.support.waiting import eventually

FAST_RETRY = {"initialInterval": "10ms", "maxInterval": "100ms", "maxElapsed": "0s"}


def http_exporter(endpoint: str | list[str], **fields: Any) -> dict[str, Any]:
    target = {"endpoints": endpoint} if isinstance(endpoint, list) else {"endpoint": endpoint}
    return {"name": "backend", "protocol": "http/protobuf", "retry": FAST_RETRY, **target, **fields}


def spec_for(*exporters: dict[str, Any], grace: str = "2s") -> dict[str, Any]:
    """Every 10-span request is a batch of its own."""
    return {
        "processors": {"batch": {"timeout": "10ms", "maxItems": 10}},
        "exporters": list(exporters),
        "lifecycle": {"shutdownGracePeriod": grace},
    }


def persistent(**fields: Any) -> dict[str, Any]:
    return {"queue": {"type": "persistent", "storageSize": "1Gi", **fields.pop("queue", {})}, **fields}


def exported(agent: RunningAgent) -> float:
    return agent.metric("otelcol_exporter_sent_spans_total", exporter="backend")


def rows(path: pathlib.Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM batches").fetchone()[0])


async def test_after_repeated_failures_the_next_endpoint_takes_over(refusing_port: RefusingPort) -> None:
    dead = refusing_port.http_endpoint  # nothing listens there
    async with OtlpBackend() as backend:
        spec = spec_for(http_exporter([dead, backend.http_endpoint]))
        async with agent_running(spec) as agent:
            assert (await post(agent, request_bytes(10)))[0] == 200
            await backend.wait_for_items_async("traces", 10)
            await eventually(lambda: exported(agent) == 10, what="export counted")
            assert agent.metric("otlp_agent_exporter_failovers_total", exporter="backend") == 1
            active = "otlp_agent_exporter_endpoint_active"
            assert agent.metric(active, exporter="backend", endpoint=backend.http_endpoint) == 1
            assert agent.metric(active, exporter="backend", endpoint=dead) == 0


async def test_an_open_circuit_stops_the_attempts_while_the_queue_keeps_the_data() -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        # the circuit's cool-down is retry.maxInterval, an hour: only the first 3 failures reach the backend
        retry = {"initialInterval": "5ms", "maxInterval": "1h", "multiplier": 1, "maxElapsed": "0s"}
        exporter = http_exporter(backend.http_endpoint, retry=retry, queue={"consumers": 1})
        async with agent_running(spec_for(exporter, grace="0s")) as agent:
            assert (await post(agent, request_bytes(10)))[0] == 200
            await eventually(
                lambda: agent.metric("otlp_agent_exporter_circuit_state", exporter="backend") == 1,
                what="the circuit to open",
            )
            assert len(backend.requests) == 3
            for _ in range(5):  # more data arrives while the backend is down: it waits in the queue
                assert (await post(agent, request_bytes(10)))[0] == 200
            await eventually(
                lambda: agent.metric("otlp_agent_queue_batches", exporter="backend") == 5,
                what="5 batches queued",
            )
            assert len(backend.requests) == 3, "no attempt while the circuit is open"
            assert (
                agent.metric(
                    "otlp_agent_failed_items_total",
                    exporter="backend",
                    signal="traces",
                    reason="retries_exhausted",
                )
                == 0
            )
        dropped = agent.metric(
            "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="shutdown"
        )
        assert dropped == 60, "a memory queue's rest is counted at shutdown, never silently lost"


async def test_durable_clients_are_answered_once_their_batch_is_on_disk(tmp_path: pathlib.Path) -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()  # nothing is exported: only the disk can explain a 200
        exporter = http_exporter(backend.http_endpoint, delivery="durable", **persistent())
        async with agent_running(spec_for(exporter, grace="0s"), queue_dir=tmp_path) as agent:
            for expected in (1, 2):
                assert (await post(agent, request_bytes(10)))[0] == 200
                assert rows(tmp_path / "backend.sqlite3") >= expected, "answered before it was committed"
            assert exported(agent) == 0


async def test_end_to_end_clients_wait_for_the_backend_and_hear_its_answer() -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        async with agent_running(
            spec_for(http_exporter(backend.http_endpoint, delivery="endToEnd"))
        ) as agent:
            waiting = asyncio.create_task(post(agent, request_bytes(10)))
            await backend.wait_for_requests_async(2)
            assert not waiting.done(), "no answer while the backend refuses"
            backend.clear_faults()
            status, _ = await waiting
            assert status == 200 and backend.accepted_items("traces") == 10

            backend.script(Fault(http_status=400, message="schema mismatch"))  # refused for good
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{agent.http_endpoint}/v1/traces",
                    data=request_bytes(4),
                    headers={"Content-Type": "application/x-protobuf"},
                ) as response,
            ):
                body = await response.read()
            assert response.status == 400, "the client hears the refusal, and does not retry it"
            assert b"schema mismatch" in body
            assert backend.accepted_items("traces") == 10


async def test_end_to_end_clients_of_a_full_queue_are_told_to_retry_not_lost(tmp_path: pathlib.Path) -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault(delay=5.0)  # the backend hangs; the first batch is stuck in flight
        exporter = http_exporter(
            backend.http_endpoint,
            delivery="endToEnd",
            # room for two requests: the one being exported and one waiting
            queue={
                "consumers": 1,
                "maxBytes": len(request_bytes(10, payload=100)) * 5 // 2,
                "whenFull": "dropOldest",
            },
        )
        async with agent_running(spec_for(exporter, grace="0s")) as agent:
            first = asyncio.create_task(post(agent, request_bytes(10, payload=100, tag=1)))
            await backend.wait_for_arrivals_async(1)
            second = asyncio.create_task(post(agent, request_bytes(10, payload=100, tag=2)))
            await eventually(
                lambda: agent.metric("otlp_agent_queue_batches", exporter="backend") == 1, what="queued"
            )
            third = asyncio.create_task(post(agent, request_bytes(10, payload=100, tag=3)))
            status, headers = await second
            assert status == 503 and int(headers["Retry-After"]) >= 1, "dropped to make room: send it again"
            dropped = agent.metric(
                "otlp_agent_dropped_items_total",
                exporter="backend",
                signal="traces",
                reason="queue_full_drop_oldest",
            )
            assert dropped == 10
            assert not first.done() and not third.done(), "still waiting for the backend"
            first.cancel()
            third.cancel()


async def test_shutdown_leaves_a_persistent_backlog_on_disk_and_the_next_start_sends_it(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        exporter = http_exporter(backend.http_endpoint, **persistent())
        async with agent_running(spec_for(exporter, grace="100ms"), queue_dir=tmp_path) as agent:
            for _ in range(3):
                assert (await post(agent, request_bytes(10)))[0] == 200
            await backend.wait_for_requests_async(2)
        assert (
            agent.metric(
                "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="shutdown"
            )
            == 0
        )
        assert rows(tmp_path / "backend.sqlite3") >= 1

        backend.clear_faults()
        async with agent_running(spec_for(exporter), queue_dir=tmp_path) as restarted:
            await backend.wait_for_items_async("traces", 30)
            assert restarted.metric("otlp_agent_queue_recovered_batches_total", exporter="backend") >= 1
            await eventually(
                lambda: rows(tmp_path / "backend.sqlite3") == 0, what="acknowledged rows deleted"
            )
