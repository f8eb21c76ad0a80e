"""Config reload: a changed file (also swapped in through a symlink, as ConfigMap volumes do) takes over
without dropping queued data, a persistent queue is handed over through its file, a listener restarts only
when its own settings change, and an invalid file is rejected while the old config keeps running."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

from tests.support.agent_runner import RunningAgent
from tests.support.config_reload import ConfigFile, exporter, manifest, reloading_agent
from tests.support.otlp_backend import Fault, OtlpBackend
from tests.support.trace_requests import post, request_bytes
from tests.support.waiting import eventually


def reloads(agent: RunningAgent, outcome: str) -> float:
    return agent.metric("otlp_agent_config_reloads_total", outcome=outcome)


async def test_a_new_config_takes_over_and_the_old_queue_drains_to_its_backend(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as old_backend, OtlpBackend() as new_backend:
        old_backend.default_fault = Fault.unavailable()  # the old backend holds the queue up
        first = manifest(exporter(old_backend.http_endpoint))
        file = ConfigFile(tmp_path, first)
        async with reloading_agent(file) as agent:
            listener = agent.agent.http
            for _ in range(2):
                assert (await post(agent, request_bytes(10)))[0] == 200
            await old_backend.wait_for_requests_async(2)

            file.write(manifest(exporter(new_backend.http_endpoint)))
            await eventually(lambda: reloads(agent, "applied") == 1, what="the reload")
            assert agent.agent.http is listener, "same receiver settings: the listener was not restarted"
            assert (await post(agent, request_bytes(10)))[0] == 200
            await new_backend.wait_for_items_async("traces", 10)

            old_backend.clear_faults()  # the old backend recovers: the old pipeline's queue drains to it
            await old_backend.wait_for_items_async("traces", 20)
        assert new_backend.accepted_items("traces") == 10
        assert (
            agent.metric(
                "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="shutdown"
            )
            == 0
        )


async def test_an_invalid_config_is_rejected_with_a_log_line_and_the_old_one_keeps_running(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with OtlpBackend() as backend:
        first = manifest(exporter(backend.http_endpoint))
        file = ConfigFile(tmp_path, first)
        async with reloading_agent(file) as agent:
            with caplog.at_level(logging.WARNING, logger="otlp_agent"):
                broken = manifest(exporter(backend.http_endpoint, compression="brotli"))
                file.write(broken)
                await eventually(lambda: reloads(agent, "rejected") == 1, what="the rejection")
            [line] = [r.getMessage() for r in caplog.records if "invalid" in r.getMessage()]
            assert "spec.exporters[0].compression" in line and "keeping the running config" in line
            file.write("exporters: [")  # not even YAML
            await eventually(lambda: reloads(agent, "rejected") == 2, what="the second rejection")
            assert (await post(agent, request_bytes(10)))[0] == 200
            await backend.wait_for_items_async("traces", 10)
            assert reloads(agent, "applied") == 0


async def test_a_persistent_queue_is_handed_over_through_its_file(tmp_path: pathlib.Path) -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        persistent = {"queue": {"type": "persistent", "storageSize": "1Gi"}}
        first = manifest(exporter(backend.http_endpoint, **persistent))
        file = ConfigFile(tmp_path, first)
        async with reloading_agent(file, queue_dir=tmp_path / "queue") as agent:
            for _ in range(3):
                assert (await post(agent, request_bytes(10)))[0] == 200
            await backend.wait_for_requests_async(1)
            changed = manifest(exporter(backend.http_endpoint, compression="zstd", **persistent))
            file.write(changed)
            await eventually(lambda: reloads(agent, "applied") == 1, what="the reload")
            assert agent.metric("otlp_agent_queue_recovered_batches_total", exporter="backend") >= 2
            backend.clear_faults()
            await backend.wait_for_items_async("traces", 30)
            assert {r.content_encoding for r in backend.requests if r.accepted} == {"zstd"}, (
                "sent by the new pipeline"
            )
        dropped = agent.metric(
            "otlp_agent_dropped_items_total", exporter="backend", signal="traces", reason="shutdown"
        )
        assert dropped == 0


async def test_a_changed_port_restarts_that_listener_only(tmp_path: pathlib.Path) -> None:
    async with OtlpBackend() as backend:
        first = manifest(exporter(backend.http_endpoint))
        file = ConfigFile(tmp_path, first)
        ready_file = tmp_path / "ready.json"
        async with reloading_agent(file, ready_path=ready_file) as agent:
            grpc_listener, http_listener = agent.agent.grpc, agent.agent.http
            # The agent listens on ports the OS picks, so a new spec port shows as a new listener.
            moved = {"receivers": {"otlp": {"http": {"port": 14318}}}}
            file.write(manifest(exporter(backend.http_endpoint), **moved))
            await eventually(lambda: reloads(agent, "applied") == 1, what="the reload")
            assert agent.agent.grpc is grpc_listener
            assert agent.agent.http is not http_listener
            assert json.loads(ready_file.read_text())["ports"] == agent.agent.ports(), "the new port is named"
            assert (await post(agent, request_bytes(10)))[0] == 200
            await backend.wait_for_items_async("traces", 10)
