"""The retry sender on a fake clock: backoff growth, giving up at maxElapsed, server hints as lower bounds,
partial success and permanent failures never retried, and an open circuit that pauses without giving up."""

from __future__ import annotations

import asyncio
import email.utils
from typing import Any

import grpc
import pytest
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.otlp import errors
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock

FAIL = ExportResult.failure("HTTP 503: busy", retryable=True)
OK = ExportResult.success(wire_bytes=10)


class ScriptedTransport:
    """Answers with `results` in order (then success) and notes the clock at every attempt."""

    def __init__(self, clock: FakeClock, *results: ExportResult) -> None:
        self.clock = clock
        self.results = list(results)
        self.attempts: list[float] = []

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        self.attempts.append(self.clock.now)
        return self.results.pop(0) if self.results else OK

    async def close(self) -> None:
        pass


def make_sender(
    *results: ExportResult, circuit_after: int = 1000, **retry: Any
) -> tuple[RetrySender, ScriptedTransport, FakeClock, AgentMetrics]:
    settings = {"initialInterval": "1s", "maxInterval": "30s", "multiplier": 2, "jitter": 0, **retry}
    exporter = spec.Exporter.model_validate({"name": "be", "debug": {}, "retry": settings})
    clock = FakeClock()
    transport = ScriptedTransport(clock, *results)
    metrics = AgentMetrics()
    sender = RetrySender(
        exporter, transport, metrics, clock=clock, sleep=clock.sleep, open_circuit_after=circuit_after
    )
    return sender, transport, clock, metrics


def batch() -> Batch:
    return Batch(spec.Signal.traces, [b""], items=5, size=0)


async def test_waits_grow_by_the_multiplier_up_to_the_cap_and_the_batch_gets_through() -> None:
    sender, transport, clock, metrics = make_sender(*[FAIL] * 6, maxInterval="10s")
    result = await sender.send(batch())
    assert result.ok
    assert clock.sleeps == [1, 2, 4, 8, 10, 10]
    assert transport.attempts == [0, 1, 3, 7, 15, 25, 35]
    assert metrics.value("otlp_agent_export_retries_total", exporter="be", signal="traces") == 6


async def test_a_batch_is_given_up_when_the_next_wait_would_pass_max_elapsed() -> None:
    sender, transport, _clock, _ = make_sender(*[FAIL] * 10, maxElapsed="10s")
    result = await sender.send(batch())
    assert not result.ok and result.gave_up and not result.retryable
    assert transport.attempts == [0, 1, 3, 7], "the next wait (8s) would end at 15s > 10s"
    assert result.message.startswith("gave up after 4 attempts in 7.0s: HTTP 503: busy")


async def test_zero_max_elapsed_retries_for_ever() -> None:
    sender, transport, _, _ = make_sender(*[FAIL] * 40, maxElapsed="0s", maxInterval="1h")
    assert (await sender.send(batch())).ok
    assert len(transport.attempts) == 41


@pytest.mark.parametrize(("hint", "expected"), [(7.0, 7.0), (0.2, 1.0)])
async def test_a_server_hint_is_a_lower_bound_on_the_wait(hint: float, expected: float) -> None:
    throttled = ExportResult.failure("HTTP 429", retryable=True, retry_after=hint)
    sender, _, clock, _ = make_sender(throttled)
    assert (await sender.send(batch())).ok
    assert clock.sleeps == [expected]


async def test_a_server_hint_longer_than_max_elapsed_gives_up_at_once() -> None:
    throttled = ExportResult.failure("HTTP 429", retryable=True, retry_after=600.0)
    sender, transport, clock, _ = make_sender(throttled, maxElapsed="60s")
    result = await sender.send(batch())
    assert result.gave_up and clock.sleeps == [] and transport.attempts == [0]


@pytest.mark.parametrize(
    "answer",
    [
        ExportResult.success(rejected=3, message="3 spans too old"),
        ExportResult.failure("HTTP 400: bad", retryable=False),
        ExportResult.failure("gRPC RESOURCE_EXHAUSTED: quota", retryable=False),
    ],
    ids=["partial-success", "permanent", "resource-exhausted-without-retry-info"],
)
async def test_partial_success_and_permanent_failures_are_never_retried(answer: ExportResult) -> None:
    sender, transport, clock, metrics = make_sender(answer)
    assert await sender.send(batch()) == answer
    assert transport.attempts == [0] and clock.sleeps == []
    assert metrics.value("otlp_agent_export_retries_total", exporter="be", signal="traces") == 0


async def test_with_retry_disabled_a_retryable_failure_is_final() -> None:
    sender, transport, _, _ = make_sender(FAIL, enabled=False)
    result = await sender.send(batch())
    assert not result.ok and result.retryable and transport.attempts == [0]


async def test_an_open_circuit_pauses_attempts_for_the_cool_down_without_counting_toward_max_elapsed() -> (
    None
):
    sender, transport, _clock, metrics = make_sender(
        *[FAIL] * 5, circuit_after=3, multiplier=1, maxInterval="30s", maxElapsed="10s"
    )
    result = await sender.send(batch())
    assert result.ok, "5 failures over 92s, but only ~5s of it spent retrying: the rest the circuit held"
    # three failures 1s apart open the circuit; then one probe per 30s cool-down until one succeeds
    assert transport.attempts == [0, 1, 2, 32, 62, 92]
    assert metrics.value("otlp_agent_exporter_circuit_state", exporter="be") == 0


async def test_the_circuit_reports_its_state_while_open() -> None:
    sender, _, clock, metrics = make_sender(*[FAIL] * 3, circuit_after=3, enabled=False)
    for _ in range(3):
        assert not (await sender.send(batch())).ok
    assert metrics.value("otlp_agent_exporter_circuit_state", exporter="be") == 1
    assert (await sender.send(batch())).ok, "after the cool-down the probe goes through"
    assert clock.now == 30
    assert metrics.value("otlp_agent_exporter_circuit_state", exporter="be") == 0


# -- what counts as retryable, and what a Retry-After header says (OTLP specification) ------------------

RETRYABLE_GRPC = {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}


@pytest.mark.parametrize(
    "code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK], ids=lambda c: c.name
)
def test_grpc_codes_are_retryable_exactly_as_the_spec_lists(code: grpc.StatusCode) -> None:
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert errors.grpc_retryable(code, has_retry_info=True)
        assert not errors.grpc_retryable(code, has_retry_info=False)
    else:
        assert errors.grpc_retryable(code, has_retry_info=False) == (code.name in RETRYABLE_GRPC)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 429, 500, 501, 502, 503, 504, 507])
def test_http_statuses_are_retryable_exactly_as_the_spec_lists(status: int) -> None:
    assert errors.http_retryable(status) == (status in {429, 502, 503, 504})


def test_retry_after_in_seconds() -> None:
    assert errors.parse_retry_after("120") == 120.0
    assert errors.parse_retry_after(" 3 ") == 3.0


def test_retry_after_as_an_http_date_is_the_time_left_until_then() -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:28:45 GMT", now=now) == 45.0
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0, "a past date: now"


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3 seconds"])
def test_an_absent_or_unreadable_retry_after_is_no_hint(value: str | None) -> None:
    assert errors.parse_retry_after(value) is None


async def test_a_cancel_arriving_as_an_attempt_completes_stops_the_sender() -> None:
    """An agent stopping while a backend answers: the cancel must not be lost (else a sender that retries for
    ever keeps the shutdown waiting for ever)."""
    sender, transport, _, _ = make_sender(FAIL)
    sending = asyncio.create_task(sender.send(batch()))
    answer = transport.export

    async def cancel_then_answer(b: Batch, timeout: float) -> ExportResult:
        sending.cancel()  # arrives while the attempt is finishing, before the sender has looked at it
        return await answer(b, timeout)

    transport.export = cancel_then_answer  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert len(transport.attempts) == 1, "no retry after the cancel"
