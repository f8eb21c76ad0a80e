"""A request the pipeline is still working on — routed, or run through processors, on the worker thread —
is counted by the memory limiter until the lanes take its parts. Its receiver gave its reservation back when
it handed the request over, so without this a flood of large requests waiting for the worker would hold
bytes the limiter does not see. A request whose client leaves meanwhile stays counted until the worker is
past it. Each case holds the worker inside the pipeline's own step (the route, or the processors)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from otlp_agent.pipeline import routing
from otlp_agent.pipeline.processors import chain
from otlp_agent.receivers import http_receiver

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.calls_in_progress import CallsInProgress
from tests.support.gated_transport import GatedTransport
from tests.support.trace_requests import request_bytes
from tests.support.waiting import eventually

#: The pipeline's step under test: routes (to the default exporter), or an attributes action on every
#: span (processors; on the worker thread above 256 KiB).
STEPS = {
    "routes": ({}, {"routes": {"rules": [], "default": ["held"]}}),
    "processors": ({"attributes": {"actions": [{"key": "blob", "action": "delete"}]}}, {}),
}
#: Large enough that validation, routing and processors all run on the worker thread.
MESSAGE = request_bytes(150, payload=2_000)


class HeldStep:
    """Replaces `owner.name` by a version that, on the worker thread, waits until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        step: Callable[..., Any] = getattr(owner, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            self.release.wait(30)
            return step(*args, **kwargs)

        monkeypatch.setattr(owner, name, held)


def held_step(monkeypatch: pytest.MonkeyPatch, step: str) -> HeldStep:
    if step == "routes":
        return HeldStep(monkeypatch, routing.Router, "route")
    return HeldStep(monkeypatch, chain.Chain, "apply")


def spec_with(step: str) -> dict[str, Any]:
    processors, routes = STEPS[step]
    return {
        "processors": {"batch": {"timeout": "10ms"}, **processors},
        "exporters": [{"name": "held", "debug": {}}],
        "lifecycle": {"shutdownGracePeriod": "2s"},
        **routes,
    }


async def post(agent: RunningAgent, session: aiohttp.ClientSession) -> int:
    async with session.post(
        agent.http_endpoint + "/v1/traces", data=MESSAGE, headers={"Content-Type": "application/x-protobuf"}
    ) as response:
        return response.status


@pytest.mark.parametrize("step", ["routes", "processors"])
async def test_a_request_is_counted_while_the_pipeline_works_on_it(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    held = held_step(monkeypatch, step)
    transport = GatedTransport()
    transport.gate.set()
    async with agent_running(spec_with(step), transports={"held": transport}) as agent:
        limiter = agent.agent.pipeline.limiter
        async with aiohttp.ClientSession() as session:
            posting = asyncio.ensure_future(post(agent, session))
            try:
                await asyncio.to_thread(held.entered.wait, 30)
                assert held.entered.is_set(), f"the request reached the {step} step"
                assert limiter.receiving == len(MESSAGE), "counted while the pipeline works on it"
            finally:
                held.release.set()
            assert await posting == 200
        await eventually(lambda: transport.items == 150, what="the request exported")
        assert limiter.receiving == 0


@pytest.mark.parametrize("step", ["routes", "processors"])
async def test_a_request_whose_client_leaves_stays_counted_until_the_worker_is_past_it(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    held = held_step(monkeypatch, step)
    handlers = CallsInProgress(monkeypatch, http_receiver.HttpReceiver, "_export")
    async with agent_running(spec_with(step), transports={"held": GatedTransport()}) as agent:
        limiter = agent.agent.pipeline.limiter
        try:
            async with aiohttp.ClientSession() as session:
                posting = asyncio.ensure_future(post(agent, session))
                await asyncio.to_thread(held.entered.wait, 30)
                assert held.entered.is_set(), f"the request reached the {step} step"
                posting.cancel()  # the client's timeout: it closes the connection, its handler is cancelled
                with pytest.raises(asyncio.CancelledError):
                    await posting
            await eventually(lambda: handlers.count == 0, what="the handler ended with its client")
            assert limiter.receiving == len(MESSAGE), "the worker still holds it: still counted"
        finally:
            held.release.set()
        await eventually(lambda: limiter.receiving == 0, what="released once the worker is past it")
