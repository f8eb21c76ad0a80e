"""The exporter's in-memory queue: bounded by bytes and items (batches being exported included), and when
full it refuses (counted), drops the oldest (counted) or makes the producer wait, as configured."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.queue import memory

from tests.support.waiting import eventually

pytestmark = pytest.mark.looptime


def batch(tag: int, items: int = 10, size: int = 1000) -> Batch:
    return Batch(Signal.traces, [b"batch-%d" % tag], items, size)


def make(**settings: Any) -> tuple[memory.MemoryQueue, list[tuple[int, str]]]:
    drops: list[tuple[int, str]] = []
    queue = memory.MemoryQueue(
        spec.Queue.model_validate(settings), lambda b, reason: drops.append((int(b.chunks[0][6:]), reason))
    )
    return queue, drops


async def contents(queue: memory.MemoryQueue) -> list[int]:
    """Take every waiting batch and finish it, as consumers do."""
    out = []
    while len(queue):
        taken = await queue.get()
        await queue.done(taken)
        out.append(int(taken.chunks[0][6:]))
    return out


async def test_batches_come_out_in_the_order_they_went_in() -> None:
    queue, drops = make()
    for tag in range(5):
        await queue.put(batch(tag))
    assert (len(queue), queue.items, queue.bytes) == (5, 50, 5000)
    assert await contents(queue) == [0, 1, 2, 3, 4]
    assert (queue.items, queue.bytes, drops) == (0, 0, [])


async def test_refuse_never_drops_what_it_is_handed_because_the_door_already_refused() -> None:
    # Under `refuse`, admission (ExporterRuntime.refuses) keeps the bound: a batch reaching the queue was
    # promised a place when its clients were answered, so dropping it here would lose acknowledged data.
    queue, drops = make(maxItems=25, whenFull="refuse")
    for tag in range(3):
        assert await queue.put(batch(tag))
    assert drops == []
    assert queue.is_full()
    assert await contents(queue) == [0, 1, 2]


async def test_drop_oldest_evicts_the_oldest_batches_to_make_room() -> None:
    queue, drops = make(maxItems=30, whenFull="dropOldest")
    for tag in range(3):
        await queue.put(batch(tag))
    await queue.put(batch(3, items=15))
    assert drops == [(0, "queue_full_drop_oldest"), (1, "queue_full_drop_oldest")]
    assert await contents(queue) == [2, 3]


async def test_a_batch_being_exported_counts_in_the_bound_until_it_is_done() -> None:
    queue, _ = make(maxItems=20)
    await queue.put(batch(0))
    taken = await queue.get()
    assert (len(queue), queue.items, queue.bytes) == (0, 10, 1000), "taken, not yet done: still held"
    await queue.done(taken)
    assert (queue.items, queue.bytes) == (0, 0)


async def test_a_requeued_batch_goes_behind_the_waiting_ones_and_stays_counted() -> None:
    queue, drops = make()
    for tag in range(3):
        await queue.put(batch(tag))
    first = await queue.get()
    await queue.requeue(first)
    assert (len(queue), queue.items) == (3, 30)
    assert await contents(queue) == [1, 2, 0]
    assert drops == []


async def test_drop_oldest_drops_the_new_batch_when_batches_being_exported_leave_no_room() -> None:
    # maxItems 15 and a batch of 10 being exported: nothing waiting can be evicted for a second batch of 10.
    queue, drops = make(maxItems=15, whenFull="dropOldest")
    await queue.put(batch(0))
    in_flight = await queue.get()
    assert not await queue.put(batch(1))
    assert drops == [(1, "queue_full")]
    assert (len(queue), queue.items) == (0, 10), "the bound held: only the batch being exported"
    await queue.done(in_flight)
    assert await queue.put(batch(2))


async def test_is_full_once_either_bound_is_reached() -> None:
    by_items, _ = make(maxItems=20)
    await by_items.put(batch(0))
    assert not by_items.is_full()
    await by_items.put(batch(1))
    assert by_items.is_full()
    by_bytes, _ = make(maxBytes="2Ki")
    await by_bytes.put(batch(0, size=2047))
    assert not by_bytes.is_full()
    await by_bytes.get()
    await by_bytes.put(batch(1, size=2048))
    assert by_bytes.is_full()


async def test_block_makes_the_producer_wait_until_a_consumer_frees_space() -> None:
    queue, drops = make(maxItems=20, whenFull="block")
    await queue.put(batch(0))
    await queue.put(batch(1))
    putting = asyncio.create_task(queue.put(batch(2)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(putting), timeout=30)  # virtual time: still blocked after 30 s
    assert not putting.done() and len(queue) == 2
    taken = await queue.get()
    assert int(taken.chunks[0][6:]) == 0
    with pytest.raises(TimeoutError):  # taken is not enough: it is still being exported
        await asyncio.wait_for(asyncio.shield(putting), timeout=30)
    await queue.done(taken)
    await asyncio.wait_for(putting, timeout=1)
    assert drops == []
    assert await contents(queue) == [1, 2]


async def test_blocked_producers_resume_in_turn_as_space_frees() -> None:
    queue, _ = make(maxItems=10, whenFull="block")
    await queue.put(batch(0))
    started = [asyncio.Event() for _ in range(3)]

    async def produce(tag: int) -> None:
        started[tag - 1].set()
        await queue.put(batch(tag))

    producers = [asyncio.create_task(produce(tag)) for tag in (1, 2, 3)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), timeout=1)
    got = []
    for _ in range(4):
        taken = await asyncio.wait_for(queue.get(), timeout=1)
        await queue.done(taken)
        got.append(int(taken.chunks[0][6:]))
    await asyncio.wait_for(asyncio.gather(*producers), timeout=1)
    assert got == [0, 1, 2, 3]


async def test_get_waits_for_a_batch() -> None:
    queue, _ = make()
    getting = asyncio.create_task(queue.get())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(getting), timeout=10)
    await queue.put(batch(7))
    assert int((await asyncio.wait_for(getting, timeout=1)).chunks[0][6:]) == 7


async def test_drain_all_drops_and_counts_everything_left() -> None:
    queue, drops = make()
    for tag in range(3):
        await queue.put(batch(tag, items=4, size=100))
    queue.drain_all("shutdown")
    assert drops == [(0, "shutdown"), (1, "shutdown"), (2, "shutdown")]
    assert (len(queue), queue.items, queue.bytes) == (0, 0, 0)
    assert not queue.is_full()


async def test_put_nowait_takes_what_needs_no_wait_and_leaves_the_rest_to_put() -> None:
    """The lane's fast path: a batch that fits (or that dropOldest makes room for) is taken without an
    await; under block without room, or while producers wait, put_nowait declines and takes nothing."""
    queue, drops = make(maxItems=20, whenFull="block")
    assert queue.put_nowait(batch(0)) is True and queue.put_nowait(batch(1)) is True
    assert queue.put_nowait(batch(2)) is None and len(queue) == 2, "full: the caller must put and wait"
    putting = asyncio.create_task(queue.put(batch(2)))
    await eventually(lambda: queue.blocked_producers == 1, what="the put waiting for room")
    await queue.done(await queue.get())
    assert queue.put_nowait(batch(3)) is None, "a producer already waits for this room: it goes first"
    await asyncio.wait_for(putting, timeout=10)
    assert drops == [] and await contents(queue) == [1, 2]

    evicting, drops = make(maxItems=20, whenFull="dropOldest")
    for tag in range(3):
        assert evicting.put_nowait(batch(tag)) is True
    assert drops == [(0, "queue_full_drop_oldest")]
    assert await contents(evicting) == [1, 2]


async def test_stop_waiting_drops_a_blocked_batch_as_shutdown() -> None:
    queue, drops = make(maxItems=10, whenFull="block")
    await queue.put(batch(0))
    putting = asyncio.create_task(queue.put(batch(1)))
    await eventually(lambda: queue.blocked_producers == 1, what="the put waiting for room")
    queue.stop_waiting()
    assert await asyncio.wait_for(putting, timeout=10) is False
    assert drops == [(1, "shutdown")]
    assert queue.put_nowait(batch(2)) is False, "after stop_waiting, what would wait is dropped at once"
    assert drops == [(1, "shutdown"), (2, "shutdown")]
