"""Run a real agent in the test's event loop on loopback ports the OS picks, and stop it whatever happens.

The agent binds every listener to port 0 (`Agent(any_free_port=True)`) and `RunningAgent` reads the ports
it got from the agent, so endpoints stay right after a reload restarts a listener.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from otlp_agent.api import loader
from otlp_agent.process.agent import Agent


def pipeline_manifest(spec: dict[str, Any], name: str = "test") -> dict[str, Any]:
    """An OTLPPipeline manifest for `spec` (its ports are the spec's; the tests' agents bind others)."""
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": name, "namespace": "tests"},
        "spec": spec,
    }


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class RunningAgent:
    """Endpoints of a started agent, read from its bound listeners."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def _port(self, listener: str) -> int:
        port = self.agent.ports()[listener]
        assert port is not None, f"the agent has no {listener} listener"
        return port

    @property
    def grpc_port(self) -> int:
        return self._port("grpc")

    @property
    def http_port(self) -> int:
        return self._port("http")

    @property
    def telemetry_port(self) -> int:
        return self._port("telemetry")

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def telemetry_url(self) -> str:
        return f"http://127.0.0.1:{self.telemetry_port}"

    def metric(self, name: str, **labels: str) -> float:
        return self.agent.metrics.value(name, **labels)

    async def post_traces(self, body: bytes) -> Answer:
        """POST an OTLP/HTTP protobuf traces request to the agent, on a connection of its own."""
        url, headers = f"{self.http_endpoint}/v1/traces", {"Content-Type": "application/x-protobuf"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return Answer(response.status, response.headers, await response.read())


def loopback_agent(pipeline: loader.OTLPPipeline, **agent_args: Any) -> Agent:
    """An agent for `pipeline` on 127.0.0.1, every listener on a port the OS picks (not started yet)."""
    return Agent(pipeline, host="127.0.0.1", any_free_port=True, **agent_args)


@contextlib.asynccontextmanager
async def agent_running(spec: dict[str, Any], **agent_args: Any) -> AsyncIterator[RunningAgent]:
    """Start an agent for `spec` on 127.0.0.1; it is shut down (gracefully) on exit."""
    async with pipeline_running(loader.load_document(pipeline_manifest(spec)), **agent_args) as agent:
        yield agent


@contextlib.asynccontextmanager
async def pipeline_running(pipeline: loader.OTLPPipeline, **agent_args: Any) -> AsyncIterator[RunningAgent]:
    """`agent_running` for a pipeline already loaded (e.g. from a file the agent reloads)."""
    agent = loopback_agent(pipeline, **agent_args)
    await agent.start()
    try:
        yield RunningAgent(agent)
    finally:
        await agent.shutdown()
