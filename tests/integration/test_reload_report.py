"""What an agent says about the config it runs (`GET /config` on its telemetry port, what the operator
asks): the SHA-256 of the file the running pipeline was built from; after a reload, the new file's; after a
rejected change — a file that does not validate, or one that validates but cannot run here (a CA file the
agent does not have) — still the old one, with the rejected file's hash and the reason."""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import aiohttp
import pytest
from otlp_agent.telemetry import logs

from tests.support.agent_runner import RunningAgent
from tests.support.config_reload import ConfigFile, exporter, manifest, reloading_agent
from tests.support.otlp_backend import OtlpBackend
from tests.support.trace_requests import post, request_bytes
from tests.support.waiting import eventually, eventually_async


@pytest.fixture(autouse=True)
def _fresh_log_rate_limit() -> Any:
    """Rejections here are logged; the log's per-kind rate limit must not swallow a later test's line."""
    yield
    logs._last_logged.pop("config_rejected", None)


async def report(agent: RunningAgent) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{agent.telemetry_url}/config") as answer:
        assert answer.status == 200
        found: dict[str, Any] = await answer.json()
        return found


def sha256(file: ConfigFile) -> str:
    return hashlib.sha256(file.link.read_bytes()).hexdigest()


async def test_the_agent_reports_the_config_it_runs_and_why_a_change_was_rejected(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend:
        file = ConfigFile(tmp_path, manifest(exporter(backend.http_endpoint)))
        first = sha256(file)
        async with reloading_agent(file) as agent:
            found = await report(agent)
            assert (found["sha256"], found["lastReload"]) == (first, None)
            assert agent.metric("otlp_agent_config_info", sha256=first) == 1

            file.write(manifest(exporter(backend.http_endpoint, compression="zstd")))
            second = sha256(file)

            async def applied() -> bool:
                return (await report(agent))["sha256"] == second

            await eventually_async(applied, what="the reload reported")
            found = await report(agent)
            assert found["lastReload"]["outcome"] == "applied" and found["lastReload"]["sha256"] == second
            assert agent.metric("otlp_agent_config_info", sha256=first) == 0
            assert agent.metric("otlp_agent_config_info", sha256=second) == 1

            file.write(manifest(exporter(backend.http_endpoint, compression="brotli")))
            invalid = sha256(file)
            await eventually(lambda: agent.metric("otlp_agent_config_reloads_total", outcome="rejected") == 1)
            found = await report(agent)
            assert found["sha256"] == second, "the running config goes on"
            assert (found["lastReload"]["sha256"], found["lastReload"]["outcome"]) == (invalid, "rejected")
            assert "spec.exporters[0].compression" in found["lastReload"]["reason"]

            missing_ca = {"tls": {"caFile": str(tmp_path / "no-such-ca.pem")}}
            vendor = {
                "name": "vendor",
                "endpoint": "https://vendor.example:4317",
                "protocol": "grpc",
                **missing_ca,
            }
            file.write(manifest(exporter(backend.http_endpoint), vendor))
            cannot_run = sha256(file)
            await eventually(lambda: agent.metric("otlp_agent_config_reloads_total", outcome="rejected") == 2)
            found = await report(agent)
            assert found["sha256"] == second
            assert (found["lastReload"]["sha256"], found["lastReload"]["outcome"]) == (cannot_run, "rejected")
            assert (
                "cannot run here" in found["lastReload"]["reason"]
                and "no-such-ca.pem" in found["lastReload"]["reason"]
            )
            assert (await post(agent, request_bytes(10)))[0] == 200, "and it keeps serving"
            await backend.wait_for_items_async("traces", 10)
