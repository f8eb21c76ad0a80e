"""Failover endpoints and the circuit breaker: when the agent moves on, when it stays, and that a dead
backend is probed once per cool-down instead of being hammered."""

from __future__ import annotations

import asyncio

import pytest
from otlp_agent.api import loader, spec
from otlp_agent.api.problems import SpecError
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.circuit import Circuit, State
from otlp_agent.exporter.transport import factory
from otlp_agent.exporter.transport.failover import FAILOVER_AFTER, FailoverTransport
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock

DOWN = ExportResult.failure("connection refused", retryable=True)
BAD = ExportResult.failure("HTTP 400: bad", retryable=False)
OK = ExportResult.success()


class Endpoint:
    """A scripted transport: answers `results` in order, then `then`."""

    def __init__(self, *results: ExportResult, then: ExportResult = OK) -> None:
        self.results = list(results)
        self.then = then
        self.calls = 0

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        self.calls += 1
        return self.results.pop(0) if self.results else self.then

    async def close(self) -> None:
        pass


def batch() -> Batch:
    return Batch(spec.Signal.traces, [b""], items=1, size=0)


def failover(*endpoints: Endpoint) -> tuple[FailoverTransport, list[tuple[int, int]]]:
    switches: list[tuple[int, int]] = []
    names = [f"e{i}:4317" for i in range(len(endpoints))]
    transport = FailoverTransport(names, list(endpoints), lambda old, new: switches.append((old, new)))
    return transport, switches


async def test_after_consecutive_failures_the_next_endpoint_takes_over() -> None:
    primary, secondary = Endpoint(then=DOWN), Endpoint()
    transport, switches = failover(primary, secondary)
    answers = [await transport.export(batch(), 1) for _ in range(FAILOVER_AFTER + 1)]
    assert [a.ok for a in answers] == [False] * FAILOVER_AFTER + [True]
    assert (primary.calls, secondary.calls) == (FAILOVER_AFTER, 1)
    assert switches == [(0, 1)]
    assert answers[0].message == "e0:4317: connection refused", "failures name their endpoint"


async def test_a_success_or_a_permanent_refusal_resets_the_count() -> None:
    primary = Endpoint(DOWN, DOWN, OK, DOWN, DOWN, BAD, DOWN, DOWN)
    transport, switches = failover(primary, Endpoint())
    for _ in range(8):
        await transport.export(batch(), 1)
    assert switches == [] and transport.active == 0, "the primary never failed 3 times in a row"


async def test_failover_wraps_around_and_stays_where_it_works() -> None:
    first, second = Endpoint(*[DOWN] * FAILOVER_AFTER), Endpoint(*[DOWN] * FAILOVER_AFTER)
    transport, switches = failover(first, second)
    for _ in range(2 * FAILOVER_AFTER + 5):
        await transport.export(batch(), 1)
    assert switches == [(0, 1), (1, 0)]
    assert transport.active == 0 and first.calls == FAILOVER_AFTER + 5


async def test_a_late_failure_from_the_endpoint_just_left_does_not_count_against_the_new_one() -> None:
    gate, started = asyncio.Event(), asyncio.Event()

    class Slow(Endpoint):
        async def export(self, batch: Batch, timeout: float) -> ExportResult:
            started.set()
            await gate.wait()
            return DOWN

    transport, _switches = failover(Slow(), Endpoint())
    late = asyncio.create_task(transport.export(batch(), 1))
    await asyncio.wait_for(started.wait(), 5)  # the slow attempt is under way on endpoint 0
    transport.active, transport.failures = 1, 0  # meanwhile other attempts moved on
    gate.set()
    await late
    assert transport.failures == 0 and transport.active == 1


def test_the_factory_builds_one_transport_per_endpoint_and_reports_the_active_one() -> None:
    exporter = spec.Exporter.model_validate(
        {"name": "ha", "endpoints": ["http://a:4318", "http://b:4318"], "protocol": "http/protobuf"}
    )
    metrics = AgentMetrics()
    transport = factory.make_transport(exporter, metrics)
    assert isinstance(transport, FailoverTransport) and len(transport.transports) == 2
    assert metrics.value("otlp_agent_exporter_endpoint_active", exporter="ha", endpoint="http://a:4318") == 1
    assert metrics.value("otlp_agent_exporter_endpoint_active", exporter="ha", endpoint="http://b:4318") == 0


def test_failover_endpoints_validate_and_durable_still_needs_a_persistent_queue() -> None:
    base = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "p"},
    }
    exporter = {"name": "ha", "endpoints": ["a:4317", "b:4317"], "tls": {"insecure": True}}
    parsed = loader.load_document({**base, "spec": {"exporters": [exporter]}})
    assert parsed.spec.exporters[0].endpoints == ["a:4317", "b:4317"]
    persistent = {"type": "persistent", "storageSize": "1Gi"}
    for delivery in ("durable", "endToEnd"):
        durable = {**exporter, "queue": persistent, "delivery": delivery}
        loader.load_document({**base, "spec": {"exporters": [durable]}})
    loader.load_document({**base, "spec": {"exporters": [{**exporter, "delivery": "endToEnd"}]}})
    with pytest.raises(SpecError) as refused:
        loader.load_document({**base, "spec": {"exporters": [{**exporter, "delivery": "durable"}]}})
    assert [str(p) for p in refused.value.problems] == [
        "spec.exporters[0].delivery: durable delivery needs queue type persistent"
    ]


# -- the circuit breaker -------------------------------------------------------------------------------


async def test_the_circuit_opens_after_consecutive_failures_and_only_then() -> None:
    clock = FakeClock()
    states: list[State] = []
    circuit = Circuit(3, 30.0, clock, states.append)
    for ok in (False, False, True, False, False):
        circuit.record(ok, retryable=True)
    assert circuit.state == State.closed and states == []
    circuit.record(False, retryable=True)
    assert circuit.state == State.open and states == [State.open]
    await circuit.admit(clock.sleep)
    assert clock.now == 30.0, "an attempt waits for the cool-down"
    assert circuit.state == State.half_open


async def test_the_circuit_counts_every_second_it_spends_away_from_closed() -> None:
    clock = FakeClock()
    circuit = Circuit(1, 30.0, clock)
    clock.now = 5.0
    assert circuit.held_back() == 0.0
    circuit.record(False, retryable=True)  # opens at 5s
    clock.now = 20.0
    assert circuit.held_back() == 15.0, "counted while still open, whoever waits and how"
    await circuit.admit(clock.sleep)  # half-open at 35s: still held back
    circuit.record(False, retryable=True)  # the probe failed: open again until 65s
    clock.now = 70.0
    circuit.record(True, retryable=False)  # closed at 70s
    clock.now = 100.0
    assert circuit.held_back() == 65.0, "5s..70s; the closed time before and after does not count"


async def test_while_half_open_one_probe_goes_through_and_the_others_wait_for_its_answer() -> None:
    clock = FakeClock()
    circuit = Circuit(1, 10.0, clock)
    circuit.record(False, retryable=True)
    await circuit.admit(clock.sleep)  # the probe
    others = [asyncio.create_task(circuit.admit(clock.sleep)) for _ in range(3)]
    await asyncio.sleep(0)  # one loop turn: each waiter runs until it waits (a yield, not a timed wait)
    assert not any(task.done() for task in others), "no second attempt while the probe is out"
    circuit.record(False, retryable=True)  # the probe failed: open for another cool-down
    await asyncio.sleep(0)  # one loop turn: the waiters see the probe's answer
    assert circuit.state in (State.open, State.half_open)
    circuit.record(True, retryable=False)  # whoever probed next succeeded
    await asyncio.gather(*others)
    assert circuit.state == State.closed


async def test_a_permanent_refusal_closes_the_circuit_because_the_backend_answered() -> None:
    circuit = Circuit(1, 10.0, FakeClock())
    circuit.record(False, retryable=True)
    circuit.record(False, retryable=False)
    assert circuit.state == State.closed


async def test_a_server_hint_longer_than_the_cool_down_keeps_the_circuit_open_longer() -> None:
    clock = FakeClock()
    circuit = Circuit(1, 10.0, clock)
    circuit.record(False, retryable=True, server_hint=45.0)
    await circuit.admit(clock.sleep)
    assert clock.now == 45.0


async def test_an_abandoned_probe_lets_the_next_caller_probe_at_once() -> None:
    clock = FakeClock()
    circuit = Circuit(1, 10.0, clock)
    circuit.record(False, retryable=True)
    await circuit.admit(clock.sleep)
    circuit.abandon()
    abandoned_at = clock.now
    await circuit.admit(clock.sleep)
    assert clock.now == abandoned_at and circuit.state == State.half_open
