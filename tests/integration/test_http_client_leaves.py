"""An HTTP client that leaves while its request waits has its handler cancelled: an endToEnd request waiting
for the backend ends with its client (holding no bytes the limiter does not count) and, sent again, is
recognised and delivered once; a body the worker thread still holds stays counted until it is done."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from otlp_agent.otlp import inspection
from otlp_agent.pipeline import intake
from otlp_agent.receivers import http_receiver

from tests.support.agent_runner import agent_running
from tests.support.calls_in_progress import CallsInProgress
from tests.support.gated_transport import GatedTransport
from tests.support.trace_requests import request_bytes
from tests.support.waiting import eventually


async def test_a_client_that_times_out_on_an_end_to_end_request_frees_its_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = GatedTransport()
    calls = CallsInProgress(monkeypatch, intake.Intake, "consume")
    spec = {
        "processors": {"batch": {"timeout": "10ms"}},
        "exporters": [{"name": "held", "debug": {}, "delivery": "endToEnd"}],
        "lifecycle": {"shutdownGracePeriod": "2s"},
    }
    body = request_bytes(10, payload=100_000)
    async with agent_running(spec, transports={"held": held}) as agent:
        url = agent.http_endpoint + "/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        for attempt in range(3):  # the client gives up each time, and sends the same request again
            async with aiohttp.ClientSession() as session:
                posting = asyncio.ensure_future(session.post(url, data=body, headers=headers))
                await eventually(lambda: calls.count == 1, what=f"attempt {attempt} waiting")
                posting.cancel()  # the client's timeout: it closes the connection
                with pytest.raises(asyncio.CancelledError):
                    await posting
            await eventually(lambda: calls.count == 0, what=f"attempt {attempt}'s handler ended")
        assert agent.metric("otlp_agent_deduplicated_items_total", exporter="held", signal="traces") == 20
        held.gate.set()
        await eventually(lambda: held.items == 10, what="the request exported")
        await asyncio.sleep(0)
        assert held.items == 10, "delivered once"


async def test_a_body_cancelled_while_the_worker_holds_it_stays_counted_until_the_worker_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that leaves while its body waits for the worker thread (validation of a large body) has its
    handler cancelled, but the body is still referenced by the worker's queue: the limiter counts it until
    the worker is past it, so clients that send and leave cannot pile up uncounted bytes."""
    spec = {"exporters": [{"name": "held", "debug": {}}], "lifecycle": {"shutdownGracePeriod": "2s"}}
    body = request_bytes(100, payload=2_000)  # > 64 KiB: validated on the worker thread
    busy = threading.Event()
    handlers = CallsInProgress(monkeypatch, http_receiver.HttpReceiver, "_export")
    async with agent_running(spec, transports={"held": GatedTransport()}) as agent:
        limiter, size = agent.agent.pipeline.limiter, len(body)
        occupied = asyncio.ensure_future(inspection.off_loop(busy.wait, 30.0))
        try:
            async with aiohttp.ClientSession() as session:
                posting = asyncio.ensure_future(
                    session.post(
                        agent.http_endpoint + "/v1/traces",
                        data=body,
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                )
                await eventually(lambda: limiter.receiving == size, what="the body read, queued")
                posting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await posting
            await eventually(lambda: handlers.count == 0, what="the handler ended with its client")
            assert limiter.receiving == size, "still referenced by the worker's queue: still counted"
        finally:
            busy.set()
            await occupied
        await eventually(lambda: limiter.receiving == 0, what="released once the worker is past it")
