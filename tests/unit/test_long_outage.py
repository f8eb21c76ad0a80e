"""What was acknowledged durably is never given up by time alone: an exporter lane (queue, consumers, retry
sender, circuit breaker) against a backend that is down far longer than `retry.maxElapsed`, in virtual
time, for every kind of backoff and cool-down that can overlap.

The bug this guards against: `maxElapsed` left out only the time a consumer spent blocked in the circuit's
`admit`; once the backoff reached `maxInterval` it overlapped the circuit's cool-down, so nearly all of an
outage counted and batches in flight were given up (a 16-minute outage with default settings lost 200 of
1,000 acknowledged spans). Now only time with the circuit closed counts, and with delivery durable or
endToEnd a batch that does reach `maxElapsed` goes back to the queue instead of being dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import pathlib
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.lane import ExporterLane
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock

pytestmark = pytest.mark.looptime

BATCH_ITEMS = 10
REQUESTS = 12


class Outage:
    """A backend that is down until `until` (virtual time), then up. Down, it answers according to
    `failure`: at once with a retryable 503 (`refused`), with 503 and a Retry-After of `hint` seconds
    (`hint`), or only after hanging for the exporter's timeout (`timeout`)."""

    def __init__(self, until: float, failure: str, hint: float = 0.0) -> None:
        self.until = until
        self.failure = failure
        self.hint = hint
        self.delivered: list[Batch] = []
        self.attempts = 0

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        self.attempts += 1
        loop = asyncio.get_running_loop()
        if loop.time() >= self.until:
            self.delivered.append(batch)
            return ExportResult.success(wire_bytes=batch.size)
        if self.failure == "timeout":
            await asyncio.sleep(timeout)
            return ExportResult.failure(f"no answer within {timeout:g}s", retryable=True)
        retry_after = self.hint if self.failure == "hint" else None
        return ExportResult.failure("HTTP 503: down", retryable=True, retry_after=retry_after)

    async def close(self) -> None:
        pass

    @property
    def items(self) -> int:
        return sum(batch.items for batch in self.delivered)


def exporter(delivery: str, queue: dict[str, Any], **retry: Any) -> spec.Exporter:
    return spec.Exporter.model_validate(
        {"name": "be", "debug": {}, "delivery": delivery, "timeout": "2s", "queue": queue, "retry": retry}
    )


async def run_outage(
    e: spec.Exporter, outage: Outage, metrics: AgentMetrics, queue_dir: pathlib.Path | None = None
) -> None:
    """Send REQUESTS requests of one batch each through a lane while the backend is down; return once
    every client was answered (each waits for its batch: endToEnd, or on disk and then exported)."""
    batch = spec.BatchSettings.model_validate({"maxItems": BATCH_ITEMS, "timeout": "10ms"})
    lane = ExporterLane(e, batch, MemoryLimiter(1 << 30, 0), metrics, outage, queue_dir)
    loop = asyncio.get_running_loop()
    # The lane's sender on the loop's (virtual) clock, as time.monotonic is in production.
    lane.sender = RetrySender(e, outage, metrics, clock=loop.time)
    await lane.start()
    try:
        futures = []
        for _ in range(REQUESTS):
            futures += await lane.accept(spec.Signal.traces, b"x" * 100, BATCH_ITEMS)
        await delivery_of(lane, futures, outage)
    finally:
        await lane.stop()


async def delivery_of(lane: ExporterLane, futures: list[asyncio.Future[None]], outage: Outage) -> None:
    if lane.delivery == spec.Delivery.end_to_end:
        await asyncio.wait_for(asyncio.gather(*futures), timeout=outage.until * 10)
    else:  # durable clients were answered at commit; wait for the queue to drain instead
        assert await lane.drain(None) or True
        await asyncio.wait_for(lane._idle.wait(), timeout=outage.until * 10)


def counted(metrics: AgentMetrics, name: str, reason: str) -> float:
    return metrics.value(name, exporter="be", signal="traces", reason=reason)


# Backoff: (initialInterval, maxInterval = the circuit's cool-down, multiplier); jitter; consumers in flight;
# and how the backend fails (a Retry-After longer than the cool-down stretches it).
TIMINGS = [(0.1, 0.1, 1.0), (0.5, 5.0, 1.5), (0.5, 5.0, 3.0), (5.0, 30.0, 1.5), (1.0, 30.0, 10.0)]
CASES = list(itertools.product(TIMINGS, (0.0, 0.5), (1, 3), ("refused", "timeout", "hint")))


@pytest.mark.parametrize(
    ("timing", "jitter", "consumers", "failure"),
    CASES,
    ids=[f"{t[0]}-{t[1]}-x{t[2]}-j{j}-c{c}-{f}" for t, j, c, f in CASES],
)
async def test_end_to_end_batches_survive_an_outage_a_hundred_times_longer_than_max_elapsed(
    timing: tuple[float, float, float], jitter: float, consumers: int, failure: str
) -> None:
    initial, longest, multiplier = timing
    max_elapsed = 2 * longest  # short: a batch can reach it while the circuit is still closed
    outage = Outage(until=100 * max_elapsed, failure=failure, hint=3 * longest)
    metrics = AgentMetrics()
    e = exporter(
        "endToEnd",
        {"consumers": consumers},
        initialInterval=f"{initial}s",
        maxInterval=f"{longest}s",
        multiplier=multiplier,
        jitter=jitter,
        maxElapsed=f"{max_elapsed}s",
    )
    await run_outage(e, outage, metrics)
    assert outage.items == REQUESTS * BATCH_ITEMS, (
        "every acknowledged item delivered once the backend is back"
    )
    assert len(outage.delivered) == REQUESTS, "and each batch once"
    for reason in ("retries_exhausted", "rejected"):
        assert counted(metrics, "otlp_agent_failed_items_total", reason) == 0
    assert counted(metrics, "otlp_agent_dropped_items_total", "max_age") == 0


async def test_the_reported_case_a_16_minute_outage_with_default_settings_loses_nothing(
    tmp_path: pathlib.Path,
) -> None:
    # As reported: persistent queue, durable delivery, default retry settings, backend down 16 minutes.
    outage = Outage(until=16 * 60, failure="refused")
    metrics = AgentMetrics()
    e = exporter("durable", {"type": "persistent", "storageSize": "1Gi"})
    await run_outage(e, outage, metrics, tmp_path)
    assert outage.items == REQUESTS * BATCH_ITEMS
    assert counted(metrics, "otlp_agent_failed_items_total", "retries_exhausted") == 0
    assert outage.attempts < 100, "the circuit held exports back instead of hammering the backend"


async def test_durable_batches_that_reach_max_elapsed_go_back_to_the_queue_and_are_counted(
    tmp_path: pathlib.Path,
) -> None:
    # A circuit that needs more failures to open than maxElapsed allows: batches reach maxElapsed with the
    # circuit closed, and must be put back, not given up.
    outage = Outage(until=600, failure="refused")
    metrics = AgentMetrics()
    e = exporter(
        "durable",
        {"type": "persistent", "storageSize": "1Gi", "consumers": 1},
        initialInterval="1s",
        maxInterval="1s",
        multiplier=1,
        jitter=0,
        maxElapsed="1s",
    )
    await run_outage(e, outage, metrics, tmp_path)
    assert outage.items == REQUESTS * BATCH_ITEMS
    assert metrics.value("otlp_agent_export_requeued_batches_total", exporter="be", signal="traces") > 0
    assert counted(metrics, "otlp_agent_failed_items_total", "retries_exhausted") == 0


# -- fast delivery: what maxElapsed means there, and queue.maxAge ------------------------------------------


def fast_sender(*results: ExportResult, open_after: int = 3, **retry: Any) -> tuple[RetrySender, FakeClock]:
    clock = FakeClock()

    class Scripted:
        async def export(self, batch: Batch, timeout: float) -> ExportResult:
            return results_left.pop(0) if results_left else ExportResult.success()

        async def close(self) -> None:
            pass

    results_left = list(results)
    settings = {"initialInterval": "1s", "maxInterval": "30s", "multiplier": 2, "jitter": 0, **retry}
    e = spec.Exporter.model_validate(
        {"name": "be", "debug": {}, "retry": settings, "queue": {"maxAge": "1h"}}
    )
    sender = RetrySender(
        e, Scripted(), AgentMetrics(), clock=clock, sleep=clock.sleep, open_circuit_after=open_after
    )
    return sender, clock


async def test_fast_a_batch_is_given_up_after_max_elapsed_of_failures_while_the_backend_is_otherwise_up() -> (
    None
):
    # Other batches get through meanwhile, so the circuit never opens (here: it would take 1000 failures).
    failures = [ExportResult.failure("HTTP 503", retryable=True)] * 10
    sender, clock = fast_sender(*failures, open_after=1000, maxElapsed="10s")
    result = await sender.send(Batch(spec.Signal.traces, [b""], 5, 0, created=clock.now))
    assert result.gave_up and not result.expired
    assert clock.now == 7, "attempts at 0, 1, 3, 7s; the next wait (8s) would pass 10s"


async def test_fast_time_with_the_circuit_open_does_not_count_toward_max_elapsed() -> None:
    # 3 failures open the circuit for 30s; 20 more failed probes, one per cool-down, ~10 minutes in all.
    failures = [ExportResult.failure("HTTP 503", retryable=True)] * 23
    sender, clock = fast_sender(*failures, maxElapsed="60s")
    result = await sender.send(Batch(spec.Signal.traces, [b""], 5, 0, created=clock.now))
    assert result.ok, "delivered after the outage, although it lasted ten times maxElapsed"
    assert clock.now > 600


async def test_a_batch_older_than_max_age_is_not_sent_again_and_says_so() -> None:
    failures = [ExportResult.failure("HTTP 503", retryable=True)] * 1000
    sender, clock = fast_sender(*failures, maxElapsed="0s")
    result = await sender.send(Batch(spec.Signal.traces, [b""], 5, 0, created=clock.now))
    assert result.expired and not result.ok and not result.retryable
    assert 3600 < clock.now < 3600 + 60, "given up at the first attempt after the hour"
    assert "older than queue.maxAge (3600s)" in result.message
