"""The batcher as an exporter sees it: batches by items, by bytes and by time (virtual time, no waiting),
oversized requests split, nothing left behind on close, and every item delivered once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import batcher
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.otlp import wire

from tests.support import placed_requests as samples

pytestmark = pytest.mark.looptime


class Collector:
    """The `emit` callback: records batches and lets tests await the next one."""

    def __init__(self) -> None:
        self.batches: list[batcher.Batch] = []
        self.times: list[float] = []
        self._arrived = asyncio.Event()

    async def __call__(self, batch: batcher.Batch) -> None:
        self.batches.append(batch)
        self.times.append(asyncio.get_running_loop().time())
        self._arrived.set()

    async def next(self, timeout: float = 60) -> batcher.Batch:
        count = len(self.batches)
        while len(self.batches) == count:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), timeout)
        return self.batches[count]

    @property
    def counts(self) -> list[int]:
        return [b.items for b in self.batches]


def make(signal: Signal = Signal.traces, **settings: Any) -> tuple[batcher.Batcher, Collector]:
    collector = Collector()
    limiter = MemoryLimiter(1 << 30, 0)
    return batcher.Batcher(signal, spec.BatchSettings.model_validate(settings), collector, limiter), collector


def one_request(signal: Signal, items: int, tag: int, padding: int = 0) -> tuple[bytes, int]:
    """A request of `items` items whose names start with i<tag>."""
    data = samples.serialize(samples.request(signal, [[]] * tag + [[items]], padding))
    return data, items


async def virtual_delay(seconds: float) -> None:
    """Let `seconds` of loop time pass (instantly, under looptime) with timers firing on the way."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(seconds, done.set_result, None)
    await done


def names(signal: Signal, payload: bytes) -> list[str]:
    return [name for name, *_ in samples.placed_items(signal, wire.parse(signal, payload))]


async def test_a_batch_is_sent_as_soon_as_it_holds_max_items() -> None:
    b, out = make(maxItems=5, timeout="10s")
    await b.add(*one_request(Signal.traces, 2, 0))
    await b.add(*one_request(Signal.traces, 3, 1))
    assert out.counts == [5]
    await b.add(*one_request(Signal.traces, 4, 2))
    await b.add(*one_request(Signal.traces, 4, 3))
    assert out.counts == [5, 4], "a request that would overflow the batch starts the next one"
    await b.close()
    assert out.counts == [5, 4, 4]


async def test_a_batch_is_sent_as_soon_as_it_holds_max_bytes() -> None:
    b, out = make(maxItems=1000, maxBytes="4Ki", timeout="10s")
    request, items = one_request(Signal.logs, 3, 0, padding=400)
    assert 1024 < len(request) < 2048
    for _ in range(3):
        await b.add(request, items)
    assert out.counts == [6]
    assert out.batches[0].size == 2 * len(request) <= 4096
    await b.close()
    assert out.counts == [6, 3]


async def test_a_partial_batch_is_sent_when_its_timeout_expires(looptime: Any) -> None:
    b, out = make(maxItems=100, timeout="200ms")
    start = float(looptime)
    await b.add(*one_request(Signal.traces, 1, 0))
    await b.add(*one_request(Signal.traces, 1, 1))
    assert out.batches == []
    batch = await out.next()
    assert batch.items == 2
    assert out.times[0] - start == pytest.approx(0.2)


async def test_the_timeout_runs_from_the_first_request_of_a_batch(looptime: Any) -> None:
    b, out = make(maxItems=100, timeout="1s")
    await b.add(*one_request(Signal.metrics, 1, 0))
    await virtual_delay(0.7)
    await b.add(*one_request(Signal.metrics, 1, 1))
    await out.next()
    assert out.times == [pytest.approx(1.0, abs=1e-6)]
    assert out.counts == [2]


async def test_a_full_batch_cancels_its_timer(looptime: Any) -> None:
    b, out = make(maxItems=2, timeout="1s")
    await b.add(*one_request(Signal.traces, 1, 0))
    await b.add(*one_request(Signal.traces, 1, 1))
    assert out.counts == [2]
    with pytest.raises(TimeoutError):
        await out.next(timeout=5)
    assert out.counts == [2], "no empty or duplicate batch when the old timer would have fired"


async def test_an_oversized_request_is_split_into_full_batches(looptime: Any) -> None:
    b, out = make(maxItems=3, timeout="1s")
    data, items = one_request(Signal.traces, 10, 0)
    await b.add(data, items)
    assert out.counts == [3, 3, 3]
    await out.next()
    assert out.counts == [3, 3, 3, 1]
    assert [n for batch in out.batches for n in names(Signal.traces, batch.payload())] == [
        f"i0.0.{n}" for n in range(10)
    ]


async def test_an_oversized_request_by_bytes_is_split_too() -> None:
    b, out = make(Signal.logs, maxItems=1000, maxBytes="2Ki", timeout="1s")
    data, items = one_request(Signal.logs, 30, 0, padding=300)
    assert len(data) > 4 * 2048
    await b.add(data, items)
    await b.close()
    assert sum(out.counts) == 30
    assert len(out.batches) >= 4
    assert all(batch.size <= 2048 + 200 for batch in out.batches)


async def test_close_sends_what_is_buffered_and_nothing_more() -> None:
    b, out = make(maxItems=100, timeout="10s")
    await b.add(*one_request(Signal.logs, 4, 0))
    await b.close()
    assert out.counts == [4]
    await b.close()
    assert out.counts == [4], "closing twice sends nothing twice"


async def test_close_waits_for_a_timer_flush_already_under_way(looptime: Any) -> None:
    release = asyncio.Event()
    emitted: list[int] = []

    async def slow_emit(batch: batcher.Batch) -> None:
        await release.wait()
        emitted.append(batch.items)

    settings = spec.BatchSettings.model_validate({"timeout": "100ms"})
    b = batcher.Batcher(Signal.traces, settings, slow_emit, MemoryLimiter(1 << 30, 0))
    await b.add(*one_request(Signal.traces, 2, 0))
    closing = asyncio.create_task(b.close())
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, release.set)
    await asyncio.wait_for(closing, 10)
    assert emitted == [2]


@pytest.mark.parametrize("signal", list(Signal))
async def test_a_batch_payload_is_one_request_with_every_item_in_order(signal: Signal) -> None:
    b, out = make(signal, maxItems=1000, timeout="1s")
    for tag in range(4):
        await b.add(*one_request(signal, tag + 1, tag))
    await b.close()
    [batch] = out.batches
    expected = [f"i{tag}.0.{n}" for tag in range(4) for n in range(tag + 1)]
    assert names(signal, batch.payload()) == expected
    assert wire.validate_and_count(signal, batch.payload()) == batch.items == 10
    assert batch.size == len(batch.payload())
