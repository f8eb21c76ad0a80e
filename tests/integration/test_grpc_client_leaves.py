"""A gRPC call cancelled (by its client, or its deadline) while the worker thread still holds its message
— validating it, or with the job queued behind others — keeps the message counted by the memory limiter
until the worker is past it: calls that send a large message and cancel cannot pile up uncounted bytes in
the worker's queue."""

from __future__ import annotations

import asyncio
import threading

import grpc
import grpc.aio
import pytest
from otlp_agent.otlp import inspection
from otlp_agent.receivers import grpc_receiver

from tests.support.agent_runner import agent_running
from tests.support.calls_in_progress import CallsInProgress
from tests.support.gated_transport import GatedTransport
from tests.support.trace_requests import TRACE_METHOD, request_bytes
from tests.support.waiting import eventually

CALLS = 8


async def test_messages_of_cancelled_calls_stay_counted_until_the_worker_is_past_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {
        "receivers": {"otlp": {"http": {"enabled": False}}},
        "exporters": [{"name": "held", "debug": {}}],
        "lifecycle": {"shutdownGracePeriod": "2s"},
    }
    message = request_bytes(100, payload=2_000)  # > 64 KiB: validated on the worker thread
    busy = threading.Event()
    handlers = CallsInProgress(monkeypatch, grpc_receiver.GrpcReceiver, "_export")
    async with agent_running(spec, transports={"held": GatedTransport()}) as agent:
        limiter, size = agent.agent.pipeline.limiter, len(message)
        occupied = asyncio.ensure_future(inspection.off_loop(busy.wait, 30.0))  # the worker, kept busy
        try:
            async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
                export = channel.unary_unary(TRACE_METHOD)
                calls = [export(message, timeout=60) for _ in range(CALLS)]
                await eventually(
                    lambda: limiter.receiving == CALLS * size, what="every message read and queued"
                )
                for call in calls:
                    call.cancel()
                for call in calls:
                    with pytest.raises(asyncio.CancelledError):
                        await call
            await eventually(lambda: handlers.count == 0, what="the handlers ended with their calls")
            assert limiter.receiving == CALLS * size, "still referenced by the worker's queue: still counted"
        finally:
            busy.set()
            await occupied
        await eventually(lambda: limiter.receiving == 0, what="released once the worker is past them")
        # The agent still serves: the next call is validated and accepted.
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            assert await channel.unary_unary(TRACE_METHOD)(message, timeout=60) is not None
