"""One batch, one lease: whatever path a batch takes through an exporter lane (delivered, refused by the
backend, dropped by the queue's policy, persisted and read back, shut down, a bug), its bytes are counted
from the moment the lane accepts them and released exactly once. And the limiter's reservations for
requests being received: wait for room, refuse when busy, never leak."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import memory
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.lane import ExporterLane
from otlp_agent.exporter.result import ExportResult
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support import placed_requests as samples
from tests.support.gated_transport import GatedTransport
from tests.support.waiting import eventually

MiB = 1024 * 1024


def request(items: int, padding: int = 100) -> bytes:
    return samples.serialize(samples.request(Signal.traces, [[items]], padding))


def make_lane(
    transport: Any, limiter: memory.MemoryLimiter, queue_dir: pathlib.Path | None = None, **exporter: Any
) -> ExporterLane:
    settings = spec.Exporter.model_validate(
        {"name": "e", "endpoint": "http://127.0.0.1:1", "protocol": "http/protobuf", **exporter}
    )
    batch = spec.BatchSettings.model_validate({"maxItems": 10, "timeout": "60s"})
    return ExporterLane(settings, batch, limiter, AgentMetrics(), transport, queue_dir)


class Leases:
    """Every lease a lane's batches carry, to check each was released."""

    def __init__(self, lane: ExporterLane) -> None:
        self.seen: list[memory.Lease] = []
        emit = lane._enqueue

        def recording(batch: Batch) -> asyncio.Task[None] | None:
            self.seen.append(batch.lease)
            return emit(batch)

        for batcher in lane.batchers.values():
            batcher._emit = recording

    def all_released(self) -> bool:
        return bool(self.seen) and all(lease.released for lease in self.seen)


async def test_a_delivered_batch_is_counted_from_acceptance_until_it_is_exported() -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()
    lane = make_lane(transport, limiter)
    leases = Leases(lane)
    await lane.start()
    data = request(10)
    await lane.accept(Signal.traces, data, 10)
    assert limiter.held == len(data)  # counted from acceptance, while the export waits
    transport.gate.set()
    await eventually(lambda: transport.items == 10, what="exported")
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released()
    await lane.stop()


@pytest.mark.parametrize(
    "result",
    [
        ExportResult.failure("bad data", retryable=False),
        ExportResult.success(rejected=3, message="partial"),
    ],
    ids=["refused-by-the-backend", "partial-success"],
)
async def test_a_batch_the_backend_refuses_is_released(result: ExportResult) -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport(result)
    transport.gate.set()
    lane = make_lane(transport, limiter)
    leases = Leases(lane)
    await lane.start()
    await lane.accept(Signal.traces, request(10), 10)
    await eventually(lambda: len(transport.batches) == 1, what="the attempt")
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released()
    await lane.stop()


async def test_batches_the_drop_oldest_policy_evicts_are_released() -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()
    lane = make_lane(transport, limiter, queue={"whenFull": "dropOldest", "maxItems": 20, "consumers": 1})
    leases = Leases(lane)
    await lane.start()
    await lane.accept(Signal.traces, request(10), 10)
    await eventually(lambda: transport.waiting == 1, what="one batch in flight")
    for _ in range(4):
        await lane.accept(Signal.traces, request(10), 10)
    dropped = lane.metrics.value(
        "otlp_agent_dropped_items_total", exporter="e", signal="traces", reason="queue_full_drop_oldest"
    )
    assert dropped == 30  # 5 batches: one in flight, one queued (the bound counts both), three evicted
    transport.gate.set()
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released() and len(leases.seen) == 5
    await lane.stop()


async def test_batches_left_in_a_memory_queue_or_in_flight_at_shutdown_are_released() -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()  # never opened: the backend hangs
    lane = make_lane(transport, limiter, queue={"consumers": 1})
    leases = Leases(lane)
    await lane.start()
    for _ in range(3):
        await lane.accept(Signal.traces, request(10), 10)
    await eventually(lambda: transport.waiting == 1, what="one batch in flight")
    assert limiter.held > 0
    await lane.stop()
    assert limiter.held == 0
    assert leases.all_released() and len(leases.seen) == 3


async def test_a_persisted_batch_leaves_memory_on_disk_and_is_leased_again_when_read_back(
    tmp_path: pathlib.Path,
) -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()
    queue = {"type": "persistent", "storageSize": "1Gi", "consumers": 1}
    lane = make_lane(transport, limiter, tmp_path, queue=queue)
    leases = Leases(lane)
    await lane.start()
    data = request(10)
    for _ in range(3):
        await lane.accept(Signal.traces, data, 10)
    await eventually(lambda: transport.waiting == 1 and len(lane.queue) == 2, what="two rows waiting")
    # On disk, the waiting rows hold no memory: only the batch being exported does (its own new lease).
    assert limiter.held == len(data)
    assert leases.all_released()
    await lane.stop()  # in flight at stop: its row stays on disk, its memory is released
    assert limiter.held == 0

    reopened = make_lane(transport, limiter, tmp_path, queue=queue)
    transport.gate.set()
    await reopened.start()
    await eventually(lambda: transport.items == 30, what="the backlog exported after the restart")
    await eventually(lambda: limiter.held == 0, what="released")
    await reopened.stop()


async def test_a_batch_a_consumer_fails_on_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)

    class Broken:
        async def export(self, batch: Batch, timeout: float) -> ExportResult:
            raise RuntimeError("a bug")

        async def close(self) -> None:
            pass

    lane = make_lane(Broken(), limiter)
    leases = Leases(lane)
    await lane.start()
    await lane.accept(Signal.traces, request(10), 10)
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released()
    await lane.stop()


def dropped(lane: ExporterLane) -> float:
    """Every item the lane counted as dropped, whatever the reason."""
    return sum(
        lane.metrics.value("otlp_agent_dropped_items_total", exporter="e", signal="traces", reason=reason)
        for reason in ("queue_full", "shutdown", "internal_error", "disk_error", "queue_full_drop_oldest")
    )


@pytest.mark.parametrize("persistent", [False, True], ids=["memory", "persistent"])
async def test_a_batch_whose_client_gives_up_during_the_hand_over_is_still_queued_and_exported(
    tmp_path: pathlib.Path, persistent: bool
) -> None:
    """Under `block`, the client whose request fills a batch waits for room; if it is cancelled (a gRPC
    deadline), the batch, which also holds an earlier request already answered, still goes in, and its
    lease is released once, when it is exported."""
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()
    queue: dict[str, Any] = {"whenFull": "block", "maxItems": 20, "consumers": 1}
    if persistent:
        queue |= {"type": "persistent", "storageSize": "1Gi"}
    lane = make_lane(transport, limiter, tmp_path, queue=queue)
    leases = Leases(lane)
    await lane.start()
    await lane.accept(Signal.traces, request(10), 10)
    await eventually(lambda: transport.waiting == 1, what="the first batch in flight")
    await lane.accept(Signal.traces, request(10), 10)  # the queue (its bound counts the export) is full now
    await lane.accept(Signal.traces, request(5), 5)  # answered: it is in the open batch
    giving_up = asyncio.create_task(lane.accept(Signal.traces, request(5), 5))  # fills that batch
    await eventually(lambda: lane.queue.blocked_producers == 1, what="the full batch waiting for room")
    giving_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await giving_up
    transport.gate.set()
    await eventually(lambda: transport.items == 30, what="all three batches exported")
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released() and len(leases.seen) == 3
    assert dropped(lane) == 0
    await lane.stop()


async def test_a_batch_still_waiting_for_room_at_stop_is_counted_and_released() -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()  # never opened: no room is ever made
    lane = make_lane(transport, limiter, queue={"whenFull": "block", "maxItems": 20, "consumers": 1})
    leases = Leases(lane)
    await lane.start()
    await lane.accept(Signal.traces, request(10), 10)
    await lane.accept(Signal.traces, request(10), 10)
    blocked = asyncio.create_task(lane.accept(Signal.traces, request(10), 10))
    await eventually(lambda: lane.queue.blocked_producers == 1, what="a producer blocked")
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    await lane.stop()
    assert limiter.held == 0
    assert leases.all_released() and len(leases.seen) == 3
    # Two batches were in the queue (one in flight), one still waiting for room: all three counted.
    assert (
        lane.metrics.value("otlp_agent_dropped_items_total", exporter="e", signal="traces", reason="shutdown")
        == 30
    )


async def test_a_request_larger_than_a_batch_is_split_and_stays_counted() -> None:
    limiter = memory.MemoryLimiter(64 * MiB, MiB)
    transport = GatedTransport()
    lane = make_lane(transport, limiter)
    leases = Leases(lane)
    await lane.start()
    data = request(35)
    await lane.accept(Signal.traces, data, 35)  # split into 10 + 10 + 10 + 5 off the loop
    assert limiter.held >= len(data)
    transport.gate.set()
    await lane.flush()
    await eventually(lambda: transport.items == 35, what="exported")
    await eventually(lambda: limiter.held == 0, what="released")
    assert leases.all_released() and len(leases.seen) == 4
    await lane.stop()


# -- the limiter's reservations -------------------------------------------------------------------------


async def test_a_reservation_waits_for_room_and_is_granted_when_memory_is_released() -> None:
    limiter = memory.MemoryLimiter(640, 10)  # a 16th (40 bytes) is kept free of reservations over a 64th (10)
    first = await limiter.reserve(400, timeout=60)
    waiting = asyncio.create_task(limiter.reserve(280, timeout=60))
    small = await limiter.reserve(10, timeout=60)  # a small one passes the waiting large one
    await asyncio.sleep(0)
    assert not waiting.done() and limiter.receiving == 410
    with pytest.raises(memory.Busy):  # a large one may not take the room kept for small ones
        await limiter.reserve(200, timeout=0.01)
    first.release()
    second = await waiting
    assert limiter.receiving == 290
    second.settle(120)  # settled to the real size
    assert limiter.receiving == 130
    second.release()
    second.release()  # idempotent
    small.release()
    assert limiter.receiving == 0 and limiter.total == 0


async def test_at_the_default_sizes_a_flood_of_the_largest_bodies_leaves_room_for_small_requests() -> None:
    # The defaults: limit 256Mi, maxBodySize and maxMessageSize 16Mi (a sixteenth of the limit).
    limiter = memory.MemoryLimiter(256 * MiB, 64 * MiB)
    largest = [limiter.try_reserve(16 * MiB) for _ in range(16)]
    assert [lease is None for lease in largest] == [False] * 15 + [True]  # the 16th waits: room is kept
    small = limiter.try_reserve(38)
    assert small is not None, "a small request waits behind slow large ones"
    at_the_threshold = [limiter.try_reserve(4 * MiB) for _ in range(3)]  # a 64th still counts as small
    assert None not in at_the_threshold and limiter.total == 252 * MiB + 38
    for lease in [*largest, small, *at_the_threshold]:
        if lease is not None:
            lease.release()
    assert limiter.total == 0


async def test_a_reservation_is_refused_when_data_held_is_over_the_soft_limit() -> None:
    limiter = memory.MemoryLimiter(100, 10)
    held = limiter.lease(95)
    with pytest.raises(memory.Busy, match="memory limit reached"):
        await limiter.reserve(1, timeout=60)
    held.release()
    (await limiter.reserve(1, timeout=60)).release()


async def test_a_reservation_that_gets_no_room_in_time_is_refused_and_leaves_nothing_behind() -> None:
    limiter = memory.MemoryLimiter(100, 10)
    first = await limiter.reserve(60, timeout=60)
    with pytest.raises(memory.Busy, match="no room for 50 bytes"):
        await limiter.reserve(50, timeout=0.01)
    cancelled = asyncio.create_task(limiter.reserve(50, timeout=60))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    first.release()
    assert limiter.receiving == 0 and not limiter._small and not limiter._large
