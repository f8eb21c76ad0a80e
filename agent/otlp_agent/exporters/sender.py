"""The retry sender: retries retryable failures with backoff until `maxElapsed`, then gives up.

Policy only: whether a failure is retryable and how long the server asked to wait come from the transport
(`ExportResult`); the per-attempt timeout is enforced here so a hung transport can never stall the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from otlp_agent import logs, spec
from otlp_agent.batcher import Batch
from otlp_agent.exporters.backoff import Backoff
from otlp_agent.exporters.result import ExportResult, Transport
from otlp_agent.metrics import AgentMetrics


class RetrySender:
    """retry -> timeout -> transport, for one exporter."""

    def __init__(
        self,
        exporter: spec.Exporter,
        transport: Transport,
        metrics: AgentMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = exporter.name
        self.timeout = exporter.timeout
        self.retry = exporter.retry
        self.transport = transport
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff or Backoff(exporter.retry)

    async def send(self, batch: Batch) -> ExportResult:
        """Export `batch`, retrying as the policy allows; the final result says what happened."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(batch)
            if result.ok or not result.retryable or not self.retry.enabled:
                return result
            delay = self._backoff.delay(attempt, result.retry_after)
            elapsed = self._clock() - started
            if self.retry.max_elapsed and elapsed + delay > self.retry.max_elapsed:
                return ExportResult.failure(
                    f"gave up after {attempt} attempts in {elapsed:.1f}s: {result.message}", retryable=False
                )
            self.metrics.retries.labels(self.name, batch.signal.value).inc()
            logs.event(
                "export_retry",
                f"exporter {self.name}: {result.message}; retrying in {delay:.2f}s",
                exporter=self.name,
                attempt=attempt,
            )
            await self._sleep(delay)

    async def _attempt(self, batch: Batch) -> ExportResult:
        began = self._clock()
        try:
            # The transport applies the timeout itself; this bound is the backstop for a transport that hangs.
            result = await asyncio.wait_for(self.transport.export(batch, self.timeout), self.timeout + 1.0)
        except TimeoutError:
            result = ExportResult.failure(f"no answer within {self.timeout:g}s", retryable=True)
        outcome = "success" if result.ok else ("retryable" if result.retryable else "permanent")
        self.metrics.export_latency.labels(self.name, batch.signal.value, outcome).observe(
            self._clock() - began
        )
        return result
