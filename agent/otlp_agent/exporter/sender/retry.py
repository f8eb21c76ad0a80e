"""The retry sender: retries retryable failures with backoff until `maxElapsed`, then gives up.

Policy only: whether a failure is retryable and how long the server asked to wait come from the transport
(`ExportResult`); the per-attempt timeout is enforced here so a hung transport can never stall the queue.
Every attempt first passes the exporter's circuit breaker.

`maxElapsed` counts only the time the circuit was closed while this batch was being retried: every second
the circuit spent open or half-open (`Circuit.held_back`) is left out, whether the batch spent it waiting
in `admit` or in its own backoff sleep (which overlaps the cool-down once backoff reaches `maxInterval`).
So a backend that is down long enough to open the circuit costs queue space, never a batch: `maxElapsed`
is how long a batch may keep failing while the backend is otherwise up. What "giving up" means is the
lane's business (fast: the batch is counted and dropped; durable / endToEnd: it goes back to the queue).

A batch older than `queue.maxAge` (when set) is not sent again: the result says `expired`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.backoff import Backoff
from otlp_agent.exporter.sender.circuit import Circuit, State
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: Consecutive retryable failures (per endpoint) that open the circuit.
CIRCUIT_OPEN_AFTER = 3


class RetrySender:
    """circuit -> retry -> timeout -> transport, for one exporter."""

    def __init__(
        self,
        exporter: spec.Exporter,
        transport: Transport,
        metrics: AgentMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
        open_circuit_after: int | None = None,
    ) -> None:
        """`open_circuit_after`: consecutive retryable failures that open the circuit (default
        CIRCUIT_OPEN_AFTER per endpoint, so with failover every endpoint gets its turn first).
        `clock` is also the clock of `Batch.created` (monotonic), for `queue.maxAge`."""
        self.name = exporter.name
        self.timeout = exporter.timeout
        self.retry = exporter.retry
        self.max_age = exporter.queue.max_age
        self.transport = transport
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff or Backoff(exporter.retry)
        open_after = open_circuit_after or CIRCUIT_OPEN_AFTER * len(exporter.endpoints or [None])
        self.circuit = Circuit(open_after, exporter.retry.max_interval, clock, self._circuit_changed)

    async def send(self, batch: Batch) -> ExportResult:
        """Export `batch`, retrying as the policy allows; the final result says what happened."""
        started = self._clock()
        held_at_start = self.circuit.held_back()
        attempt = 0
        while True:
            attempt += 1
            await self.circuit.admit(self._sleep)
            if self.max_age and self._clock() - batch.created > self.max_age:
                message = f"older than queue.maxAge ({self.max_age:g}s) after {attempt - 1} attempts"
                return dataclasses.replace(ExportResult.failure(message, retryable=False), expired=True)
            result = await self._attempt(batch)
            if result.ok or not result.retryable or not self.retry.enabled:
                return result
            delay = self._backoff.delay(attempt, result.retry_after)
            # Only time with the circuit closed counts (see the module docstring): what has passed, and of
            # the coming wait, what the circuit's cool-down will not cover.
            elapsed = self._clock() - started - (self.circuit.held_back() - held_at_start)
            ahead = max(0.0, delay - self.circuit.open_for())
            if self.retry.max_elapsed and elapsed + ahead > self.retry.max_elapsed:
                message = f"gave up after {attempt} attempts in {elapsed:.1f}s: {result.message}"
                return dataclasses.replace(ExportResult.failure(message, retryable=False), gave_up=True)
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
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that arrives as the attempt
            # completes, and a sender retrying for ever would then hold up the agent's shutdown for ever.
            async with asyncio.timeout(self.timeout + 1.0):
                result = await self.transport.export(batch, self.timeout)
        except TimeoutError:
            result = ExportResult.failure(f"no answer within {self.timeout:g}s", retryable=True)
        except BaseException:
            self.circuit.abandon()
            raise
        self.circuit.record(result.ok, result.retryable, result.retry_after)
        outcome = "success" if result.ok else ("retryable" if result.retryable else "permanent")
        self.metrics.export_latency.labels(self.name, batch.signal.value, outcome).observe(
            self._clock() - began
        )
        return result

    def _circuit_changed(self, state: State) -> None:
        self.metrics.circuit_state.labels(self.name).set(int(state))
        if state == State.open:
            logs.event(
                f"circuit_open_{self.name}",
                f"exporter {self.name}: backend keeps failing; pausing exports for "
                f"{self.circuit.cool_down:g}s (the queue keeps the data)",
                exporter=self.name,
            )
