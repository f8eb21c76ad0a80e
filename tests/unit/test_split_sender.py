"""Payload too large, with a backend that refuses batches above a size: the batch is split at the wire level
and every item gets through in parts; an item that can never fit is dropped alone, counted and logged; the
exporter learns the limit and caps its batches; and the lane tells waiting clients and its metrics exactly
what happened."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.sender.retry import RetrySender
from otlp_agent.exporter.sender.split import SizeLimit, SplittingSender
from otlp_agent.otlp import wire
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock


class LimitedBackend:
    """A transport whose backend refuses (413) any batch above `limit` bytes and records what it took."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.attempts: list[int] = []
        self.spans: list[str] = []

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        payload = batch.payload()
        self.attempts.append(len(payload))
        if len(payload) > self.limit:
            return ExportResult.failure("HTTP 413: too large", retryable=False, too_large=True)
        message = wire.parse(batch.signal, payload)
        self.spans += [
            span.name for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans
        ]
        return ExportResult.success(wire_bytes=len(payload))

    async def close(self) -> None:
        pass


def spans(*sizes: int, resources: int = 1) -> Batch:
    """A batch of spans named s0, s1, ... each carrying an attribute of the given size, spread over
    `resources` resources."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scopes = [request.resource_spans.add().scope_spans.add() for _ in range(resources)]
    for index, size in enumerate(sizes):
        span = scopes[index % resources].spans.add(
            name=f"s{index}", trace_id=b"\x01" * 16, span_id=b"\x02" * 8
        )
        span.attributes.add(key="blob", value=common_pb2.AnyValue(string_value="x" * size))
    payload = request.SerializeToString()
    return Batch(spec.Signal.traces, [payload], len(sizes), len(payload))


def sender(backend: LimitedBackend) -> tuple[SplittingSender, AgentMetrics, list[int]]:
    metrics = AgentMetrics()
    exporter = spec.Exporter.model_validate({"name": "be", "debug": {}, "retry": {"jitter": 0}})
    clock = FakeClock()
    retry = RetrySender(exporter, backend, metrics, clock=clock, sleep=clock.sleep)
    caps: list[int] = []
    return SplittingSender(retry, metrics, caps.append), metrics, caps


async def test_a_refused_batch_gets_through_in_parts_and_the_limit_is_learned() -> None:
    backend = LimitedBackend(limit=3000)
    splitter, metrics, caps = sender(backend)
    batch = spans(*[500] * 20, resources=3)
    result = await splitter.send(batch)
    assert result.ok and result.dropped == 0 and result.rejected == 0
    assert sorted(backend.spans, key=lambda n: int(n[1:])) == [f"s{i}" for i in range(20)]  # each once
    assert backend.attempts[0] == batch.size > 3000
    assert caps and caps[-1] <= 3000
    assert metrics.value("otlp_agent_exporter_batch_bytes_cap", exporter="be") == caps[-1]
    assert metrics.value("otlp_agent_exporter_too_large_refusals_total", exporter="be") >= 1
    assert result.wire_bytes == sum(size for size in backend.attempts if size <= 3000)


async def test_once_the_limit_is_learned_batches_are_split_before_they_are_sent() -> None:
    backend = LimitedBackend(limit=3000)
    splitter, _, _ = sender(backend)
    refusals_per_batch = []
    for _ in range(8):
        backend.attempts.clear()
        result = await splitter.send(spans(*[500] * 20))
        assert result.ok and result.dropped == 0
        refusals_per_batch.append(sum(1 for size in backend.attempts if size > 3000))
    # The first batch is refused whole; a few probes narrow the cap; then nothing is refused any more.
    assert refusals_per_batch[0] >= 1
    assert refusals_per_batch[-4:] == [0, 0, 0, 0]
    assert sum(refusals_per_batch) <= 6


async def test_an_item_that_can_never_fit_is_dropped_alone_counted_and_reported() -> None:
    backend = LimitedBackend(limit=3000)
    splitter, metrics, _ = sender(backend)
    result = await splitter.send(spans(200, 5000, 200, 200))
    assert result.ok and result.dropped == 1
    assert sorted(backend.spans) == ["s0", "s2", "s3"]
    assert (
        metrics.value("otlp_agent_dropped_items_total", exporter="be", signal="traces", reason="too_large")
        == 1
    )
    assert "can never fit the backend's size limit" in result.message


async def test_a_single_item_batch_that_is_refused_is_dropped_without_splitting() -> None:
    backend = LimitedBackend(limit=1000)
    splitter, metrics, _ = sender(backend)
    result = await splitter.send(spans(5000))
    assert (result.ok, result.dropped) == (True, 1)
    assert len(backend.attempts) == 1
    assert (
        metrics.value("otlp_agent_dropped_items_total", exporter="be", signal="traces", reason="too_large")
        == 1
    )


async def test_a_batch_within_the_limit_goes_out_as_it_is() -> None:
    backend = LimitedBackend(limit=100_000)
    splitter, _, caps = sender(backend)
    batch = spans(*[500] * 20)
    result = await splitter.send(batch)
    assert result == ExportResult.success(wire_bytes=batch.size)
    assert backend.attempts == [batch.size] and caps == []


def test_the_cap_closes_in_on_the_limit_from_both_sides() -> None:
    limit = SizeLimit()
    assert limit.cap is None
    limit.accepted(1000)
    limit.refuse(4000)
    assert limit.cap == 2500  # the midpoint between what fit and what was refused
    limit.accepted(2500)
    assert limit.cap == 3250
    limit.refuse(3250)
    assert limit.cap == 2875
    limit.accepted(3000)
    assert limit.cap == 3000  # within 10% of the smallest refusal: stop probing
    limit.accepted(3200)  # larger than before but still below the refusal
    assert limit.cap == 3200


def test_before_anything_fit_the_cap_is_half_the_refusal() -> None:
    limit = SizeLimit()
    limit.refuse(10_000)
    assert limit.cap == 5000


@pytest.mark.parametrize("size", [1, 2])
def test_tiny_limits_stay_positive(size: int) -> None:
    limit = SizeLimit()
    limit.refuse(size)
    assert limit.cap is not None and limit.cap >= 1
