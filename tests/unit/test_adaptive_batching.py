"""`batch.timeout: auto`: the wait of a partial batch starts at minTimeout, doubles while the exporter is
busy (a batch waiting in its queue, or every consumer exporting) up to maxTimeout, halves back while it is
idle, and a real exporter lane behaves so: short waits at low load, long ones behind a slow backend, with
the current wait as a metric. Virtual time (looptime): nothing waits for real."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import batcher
from otlp_agent.exporter.lane import ExporterLane
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support import placed_requests as samples
from tests.support.gated_transport import GatedTransport

pytestmark = pytest.mark.looptime


def settings(**batch: Any) -> spec.BatchSettings:
    return spec.BatchSettings.model_validate({"timeout": "auto", **batch})


def test_the_wait_doubles_while_busy_halves_while_idle_and_stays_within_its_bounds() -> None:
    seen: list[float] = []
    adaptive = batcher.AdaptiveTimeout(settings(minTimeout="10ms", maxTimeout="80ms"), seen.append)
    assert adaptive.current == 0.01
    adaptive.handed_over(waiting=1, in_flight=0, consumers=2)  # a batch already waits: busy
    adaptive.handed_over(waiting=0, in_flight=2, consumers=2)  # every consumer exporting: busy
    adaptive.handed_over(waiting=3, in_flight=2, consumers=2)
    adaptive.handed_over(waiting=3, in_flight=2, consumers=2)
    assert adaptive.current == 0.08  # capped at maxTimeout
    adaptive.handed_over(waiting=0, in_flight=1, consumers=2)  # some room, nothing waiting: unchanged
    assert adaptive.current == 0.08
    for _ in range(5):
        adaptive.handed_over(waiting=0, in_flight=0, consumers=2)  # idle
    assert adaptive.current == 0.01
    assert seen == [0.01, 0.02, 0.04, 0.08, 0.04, 0.02, 0.01]


def test_the_defaults_are_20ms_to_1s_and_a_fixed_timeout_has_no_adaptive_one() -> None:
    adaptive = batcher.AdaptiveTimeout.for_settings(settings())
    assert adaptive is not None and (adaptive.minimum, adaptive.maximum) == (0.02, 1.0)
    assert (
        batcher.AdaptiveTimeout.for_settings(spec.BatchSettings.model_validate({"timeout": "200ms"})) is None
    )


def request(tag: int) -> tuple[bytes, int]:
    return samples.serialize(samples.request(Signal.traces, [[]] * tag + [[2]])), 2


class TimedTransport(GatedTransport):
    """A fast backend that notes the loop time of every export."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.exported = asyncio.Queue[float]()

    async def export(self, batch: Any, timeout: float) -> Any:
        result = await super().export(batch, timeout)
        self.exported.put_nowait(asyncio.get_running_loop().time())
        return result


async def test_a_lane_at_low_load_sends_each_request_after_the_shortest_wait(looptime: Any) -> None:
    transport = TimedTransport()
    metrics = AgentMetrics()
    exporter = spec.Exporter(name="backend", endpoint="http://x")
    lane = ExporterLane(exporter, settings(), MemoryLimiter(1 << 30, 0), metrics, transport)
    await lane.start()
    try:
        for tag in range(5):
            sent = asyncio.get_running_loop().time()
            await lane.accept(Signal.traces, *request(tag))
            assert await transport.exported.get() - sent == pytest.approx(0.02)  # minTimeout, every time
            await asyncio.sleep(1.0)  # the next request comes much later: low load
        assert metrics.value("otlp_agent_batch_timeout_seconds", exporter="backend") == 0.02
    finally:
        await lane.stop()


async def test_behind_a_slow_backend_the_wait_grows_to_max_timeout_and_batches_grow_with_it(
    looptime: Any,
) -> None:
    transport = GatedTransport()  # exports hang until the gate opens
    metrics = AgentMetrics()
    exporter = spec.Exporter.model_validate(
        {"name": "backend", "endpoint": "http://x", "queue": {"consumers": 1}}
    )
    lane = ExporterLane(exporter, settings(maxTimeout="320ms"), MemoryLimiter(1 << 30, 0), metrics, transport)
    await lane.start()
    try:
        for tag in range(200):  # a request every 10 ms for 2 s, the backend stuck
            await lane.accept(Signal.traces, *request(tag))
            await asyncio.sleep(0.01)
        assert lane.adaptive_timeout is not None and lane.adaptive_timeout.current == 0.32
        assert metrics.value("otlp_agent_batch_timeout_seconds", exporter="backend") == 0.32
        transport.gate.set()
        await lane.flush()
        await lane.drain(None)
        sizes = [batch.items for batch in transport.batches]
        assert sum(sizes) == 400
        assert sizes[0] == 4  # the first batch waited 20 ms: two requests
        assert max(sizes) >= 60  # 320 ms of requests every 10 ms, 2 items each
    finally:
        await lane.stop()
