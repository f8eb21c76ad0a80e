"""`otlp-agent run --any-free-port --ready-file`, as a parent process uses it: every listener on a port the OS
picked, the ready file and the "ready" log line naming them, two agents of one config side by side, and
the file gone once the agent stops."""

from __future__ import annotations

import json
import pathlib

import aiohttp
import orjson
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support import network
from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import OtlpBackend


def write_config(folder: pathlib.Path, backend: OtlpBackend) -> pathlib.Path:
    """A pipeline on the spec's default ports (4317, 4318, 8888), which --any-free-port leaves alone."""
    exporter = {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
    config = folder / "pipeline.yaml"
    document = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "ports", "namespace": "tests"},
        "spec": {"processors": {"batch": {"timeout": "10ms"}}, "exporters": [exporter]},
    }
    config.write_text(yaml.safe_dump(document))
    return config


def spans(name: str) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=b"\x01" * 16, span_id=b"\x02" * 8
    )
    return bytes(request.SerializeToString())


def ready_log_line(agent: AgentProcess) -> dict[str, object]:
    lines = [orjson.loads(line) for line in agent.log_text().splitlines() if line.startswith("{")]
    (ready,) = [line for line in lines if str(line["message"]).endswith(" ready")]
    return ready


async def test_two_agents_of_one_config_listen_side_by_side_on_the_ports_their_ready_files_name(
    tmp_path: pathlib.Path, backend: OtlpBackend
) -> None:
    config = write_config(tmp_path, backend)
    agents = [AgentProcess(config, name=f"agent-{n}") for n in range(2)]
    try:
        for agent in agents:
            await agent.start()
        ports = [set(agent.ports.values()) for agent in agents]
        assert all(len(p) == 3 and None not in p for p in ports), "three listeners, each on its own port"
        assert not ports[0] & ports[1], "two agents of one config share no port"
        assert not {4317, 4318, 8888} & (ports[0] | ports[1]), "the spec's ports are not used"
        async with aiohttp.ClientSession() as session:
            for n, agent in enumerate(agents):
                assert json.loads(agent.ready_file.read_text())["pid"] == agent.pid
                log = ready_log_line(agent)
                assert [log["grpc_port"], log["http_port"], log["telemetry_port"]] == [
                    agent.port("grpc"), agent.port("http"), agent.port("telemetry")
                ]  # fmt: skip
                assert await network.accepts_connections(agent.port("grpc"))
                async with session.get(agent.url("telemetry", "/readyz")) as response:
                    assert response.status == 200
                headers = {"Content-Type": "application/x-protobuf"}
                async with session.post(
                    agent.url("http", "/v1/traces"), data=spans(f"via-agent-{n}"), headers=headers
                ) as response:
                    assert response.status == 200
        await backend.wait_for_items_async("traces", 2)
        assert {span.name for _, _, span in backend.spans()} == {"via-agent-0", "via-agent-1"}
    finally:
        for agent in agents:
            agent.stop()


async def test_the_ready_file_is_gone_and_the_ports_closed_once_the_agent_stops(
    tmp_path: pathlib.Path, backend: OtlpBackend
) -> None:
    agent = AgentProcess(write_config(tmp_path, backend))
    try:
        await agent.start()
    finally:
        assert agent.stop() == 0, agent.log_text()
    assert not agent.ready_file.exists()
    for listener in ("grpc", "http", "telemetry"):
        assert not await network.accepts_connections(agent.port(listener)), listener
