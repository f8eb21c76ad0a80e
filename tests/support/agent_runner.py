"""Run a real agent in the test's event loop on free loopback ports, and stop it whatever happens."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from otlp_agent.api import loader
from otlp_agent.process.agent import Agent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pipeline_manifest(spec: dict[str, Any], name: str = "test") -> dict[str, Any]:
    """An OTLPPipeline manifest for `spec`, with receivers and telemetry moved to free ports."""
    spec = dict(spec)
    receivers = spec.setdefault("receivers", {}).setdefault("otlp", {})
    for kind in ("grpc", "http"):
        receivers.setdefault(kind, {}).setdefault("port", free_port())
    spec.setdefault("telemetry", {}).setdefault("port", free_port())
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": name, "namespace": "tests"},
        "spec": spec,
    }


class RunningAgent:
    """Endpoints of a started agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        otlp = agent.spec.receivers.otlp
        self.grpc_endpoint = f"127.0.0.1:{otlp.grpc.port}"
        self.http_endpoint = f"http://127.0.0.1:{otlp.http.port}"
        self.telemetry_url = f"http://127.0.0.1:{agent.spec.telemetry.port}"

    def metric(self, name: str, **labels: str) -> float:
        return self.agent.metrics.value(name, **labels)


@contextlib.asynccontextmanager
async def agent_running(spec: dict[str, Any], **agent_args: Any) -> AsyncIterator[RunningAgent]:
    """Start an agent for `spec` on 127.0.0.1; it is shut down (gracefully) on exit."""
    pipeline = loader.load_document(pipeline_manifest(spec))
    agent = Agent(pipeline, host="127.0.0.1", **agent_args)
    await agent.start()
    try:
        yield RunningAgent(agent)
    finally:
        await agent.shutdown()
