"""A persistent exporter renamed by a reload leaves its backlog in `<old name>.sqlite3`: the reload says so,
the next start says so (log line and `otlp_agent_queue_orphaned_items{file}`), and naming the exporter
again sends the backlog, exactly once, even when the old pipeline was still sending it."""

from __future__ import annotations

import collections
import logging
import pathlib

import pytest
from otlp_agent.api import loader

from tests.support.agent_runner import RunningAgent, pipeline_manifest, pipeline_running
from tests.support.config_reload import FAST_RETRY
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.trace_requests import post, request_bytes

ORPHANED = "otlp_agent_queue_orphaned_items"


def config(backend: OtlpBackend, name: str) -> loader.OTLPPipeline:
    exporter = {
        "name": name,
        "endpoint": backend.http_endpoint,
        "protocol": "http/protobuf",
        "retry": FAST_RETRY,
        "delivery": "durable",
        "queue": {"type": "persistent", "storageSize": "1Gi"},
    }
    return loader.load_document(
        pipeline_manifest(
            {
                "receivers": {"otlp": {"grpc": {"enabled": False}}},
                "processors": {"batch": {"timeout": "10ms"}},
                "exporters": [exporter],
                "lifecycle": {"shutdownGracePeriod": "100ms"},
            }
        )
    )


async def acknowledge_three_requests(agent: RunningAgent) -> None:
    """30 spans answered 200 (`durable`: on disk), none exported: the backend is down."""
    for tag in (1, 2, 3):
        assert (await post(agent, request_bytes(10, tag=tag)))[0] == 200


def warnings(caplog: pytest.LogCaptureFixture, file: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and file in r.getMessage()]


def spans_received(backend: OtlpBackend) -> collections.Counter[tuple[bytes, bytes]]:
    return collections.Counter((span.trace_id, span.span_id) for _, _, span in backend.spans())


async def test_a_renamed_exporters_backlog_is_reported_at_reload_and_start_and_sent_once_renamed_back(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue_dir = tmp_path / "queue"
    file = "vendor-a3.sqlite3"
    caplog.set_level(logging.WARNING, logger="otlp_agent")
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        async with pipeline_running(config(backend, "vendor-a3"), queue_dir=queue_dir) as agent:
            await acknowledge_three_requests(agent)
            assert await agent.agent.reload(config(backend, "vendor-a3-eu"))
            assert agent.metric(ORPHANED, file=file) == 30, "the old pipeline still holds all of it"
            [renamed] = warnings(caplog, file)
            assert "renamed or removed with 30 items" in renamed and "rename it back" in renamed
        assert {p.name for p in queue_dir.glob("*.sqlite3")} == {file, "vendor-a3-eu.sqlite3"}

        caplog.clear()
        async with pipeline_running(config(backend, "vendor-a3-eu"), queue_dir=queue_dir) as agent:
            assert agent.metric(ORPHANED, file=file) == 30
            [found] = warnings(caplog, file)
            assert "(30 items)" in found and "vendor-a3 with a persistent queue" in found

            backend.clear_faults()
            assert await agent.agent.reload(config(backend, "vendor-a3"))  # renamed back: the file is sent
            await backend.wait_for_items_async("traces", 30, timeout=30)
            assert f'file="{file}"' not in agent.agent.metrics.exposition().decode()
        assert set(spans_received(backend).values()) == {1}, "each span exactly once"
        assert len(spans_received(backend)) == 30


async def test_an_exporter_renamed_back_while_its_old_pipeline_still_sends_is_taken_over(
    tmp_path: pathlib.Path,
) -> None:
    """Renamed, then renamed back before the old pipeline emptied the file: the file is taken over from the
    old pipeline, not opened twice (which would send every batch twice)."""
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        async with pipeline_running(config(backend, "origin"), queue_dir=tmp_path) as agent:
            await acknowledge_three_requests(agent)
            assert await agent.agent.reload(config(backend, "elsewhere"))
            assert await agent.agent.reload(config(backend, "origin"))
            assert agent.metric(ORPHANED, file="origin.sqlite3") == 0
            backend.clear_faults()
            await backend.wait_for_items_async("traces", 30, timeout=30)
            await post(
                agent, request_bytes(1, tag=9)
            )  # one more export after the backlog: nothing else comes
            await backend.wait_for_items_async("traces", 31, timeout=30)
        assert set(spans_received(backend).values()) == {1}, "each span exactly once"
