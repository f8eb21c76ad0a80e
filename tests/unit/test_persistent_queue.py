"""The persistent queue, by failure mode: reopen after a stop or a crash, an export cut short, a corrupt row,
a file that is not a database, a full disk, a file of the previous format, and every whenFull policy
bounded by bytes on disk."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import threading
import time
import zlib

import pytest
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.queue.persistent import FORMAT_VERSION, PersistentQueue

from tests.support.waiting import eventually


class Events:
    """What the queue reported: drops with their reason, corrupt rows."""

    def __init__(self) -> None:
        self.dropped: list[tuple[int, str]] = []
        self.corrupt: list[str] = []

    def drop(self, batch: Batch, reason: str) -> None:
        self.dropped.append((batch.items, reason))


def settings(**fields: object) -> spec.Queue:
    return spec.Queue.model_validate({"type": "persistent", "storageSize": "1Gi", **fields})


async def opened(path: pathlib.Path, events: Events | None = None, **fields: object) -> PersistentQueue:
    events = events or Events()
    queue = PersistentQueue(
        path, settings(**fields), events.drop, events.corrupt.append, MemoryLimiter(1 << 30, 0)
    )
    await queue.open()
    return queue


def batch(tag: int, size: int = 100, signal: spec.Signal = spec.Signal.traces) -> Batch:
    payload = bytes([tag]) * size
    return Batch(signal, [payload[: size // 2], payload[size // 2 :]], items=tag, size=size)


async def test_batches_come_back_oldest_first_with_their_bytes_after_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "backend.sqlite3"
    queue = await opened(path)
    for tag, signal in ((1, spec.Signal.traces), (2, spec.Signal.logs), (3, spec.Signal.metrics)):
        assert await queue.put(batch(tag, signal=signal))
    assert (len(queue), queue.bytes, queue.items) == (3, 300, 6)
    assert await queue.close() == 3, "everything is left on disk"

    queue = await opened(path)
    assert queue.recovered == 3 and queue.bytes == 300
    got = [await queue.get() for _ in range(3)]
    assert [(b.signal, b.items, b.payload()) for b in got] == [
        (spec.Signal.traces, 1, b"\x01" * 100),
        (spec.Signal.logs, 2, b"\x02" * 100),
        (spec.Signal.metrics, 3, b"\x03" * 100),
    ]
    await queue.close()


async def test_a_batch_whose_export_was_cut_short_is_sent_again_and_an_acknowledged_one_never(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "backend.sqlite3"
    queue = await opened(path)
    for tag in (1, 2, 3):
        await queue.put(batch(tag))
    acknowledged, cut_short = await queue.get(), await queue.get()
    await queue.done(acknowledged)
    assert cut_short.items == 2  # the agent dies while this one is being exported
    await queue.close()

    queue = await opened(path)
    assert [(await queue.get()).items for _ in range(len(queue))] == [2, 3]
    await queue.close()


async def test_a_corrupt_row_is_skipped_deleted_and_counted_and_the_queue_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "backend.sqlite3"
    queue = await opened(path)
    for tag in (1, 2, 3, 4):
        await queue.put(batch(tag))
    await queue.close()
    with sqlite3.connect(path) as db:  # bit rot in row 2's payload, and an unknown signal in row 3
        db.execute("UPDATE batches SET payload = ? WHERE items = 2", (b"\x00" * 100,))
        db.execute("UPDATE batches SET signal = 'profiles' WHERE items = 3")

    events = Events()
    queue = await opened(path, events)
    assert (await queue.get()).items == 1
    assert (await queue.get()).items == 4
    assert len(events.corrupt) == 2 and "corrupt" in events.corrupt[0]
    await queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT items FROM batches ORDER BY id").fetchall() == [(1,), (4,)]


async def test_a_file_that_is_not_a_database_is_moved_aside_and_a_new_queue_starts(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "backend.sqlite3"
    path.write_bytes(b"this is not SQLite " * 1000)
    queue = await opened(path)
    assert len(queue) == 0 and await queue.put(batch(1))
    await queue.close()
    assert moved_aside(tmp_path).startswith(b"this is not SQLite")


def moved_aside(directory: pathlib.Path) -> bytes:
    (aside,) = directory.glob("backend.sqlite3.corrupt-*")
    return aside.read_bytes()


async def test_the_file_follows_the_documented_contract(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "backend.sqlite3"
    queue = await opened(path)
    await queue.put(batch(7))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION,)
        row = db.execute("SELECT signal, items, size, crc32, length(payload) FROM batches").fetchone()
    assert row[:3] == ("traces", 7, 100) and row[4] == 100
    await queue.close()


async def test_the_stop_counts_every_row_left_on_disk_exports_under_way_included(
    tmp_path: pathlib.Path,
) -> None:
    # The bug: "4 batches left" logged while 6 rows remained (the two being exported were not counted).
    path = tmp_path / "backend.sqlite3"
    queue = await opened(path)
    for tag in range(1, 7):
        await queue.put(batch(tag))
    await queue.get(), await queue.get()  # two consumers are exporting when the agent stops
    assert len(queue) == 4
    assert await queue.close() == 6
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (6,)


async def test_a_requeued_batch_waits_behind_the_others_and_its_row_stays(tmp_path: pathlib.Path) -> None:
    queue = await opened(tmp_path / "q.sqlite3")
    for tag in (1, 2, 3):
        await queue.put(batch(tag))
    first = await queue.get()
    await queue.requeue(first)
    assert (len(queue), queue.items, queue.bytes) == (3, 6, 300)
    got = [await queue.get() for _ in range(3)]
    assert [(b.items, b.payload()) for b in got] == [
        (2, b"\x02" * 100),
        (3, b"\x03" * 100),
        (1, b"\x01" * 100),
    ]
    for taken in got:
        await queue.done(taken)
    assert (queue.items, queue.bytes) == (0, 0)
    assert await queue.close() == 0


async def test_when_a_batch_was_made_survives_a_restart_for_max_age(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = await opened(path)
    old = batch(1)
    old.created = time.monotonic() - 3600  # batched an hour ago
    await queue.put(old)
    await queue.close()
    queue = await opened(path)
    age = time.monotonic() - (await queue.get()).created
    assert 3600 <= age < 3600 + 60
    await queue.close()


async def test_a_file_of_format_1_is_upgraded_in_place_and_its_rows_count_as_batched_at_open(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, signal TEXT NOT NULL, items INTEGER "
            "NOT NULL, size INTEGER NOT NULL, crc32 INTEGER NOT NULL, payload BLOB NOT NULL)"
        )
        db.execute(
            "INSERT INTO batches (signal, items, size, crc32, payload) VALUES ('logs', 2, 3, ?, ?)",
            (zlib.crc32(b"abc"), b"abc"),
        )
        db.execute("PRAGMA user_version = 1")
    queue = await opened(path)
    assert queue.recovered == 1
    taken = await queue.get()
    assert (taken.signal, taken.items, taken.payload()) == (spec.Signal.logs, 2, b"abc")
    assert time.monotonic() - taken.created < 60, "no age is made up for an old row"
    await queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION,) == (2,)


async def test_a_full_disk_drops_the_batch_with_a_reason_and_the_queue_keeps_working(
    tmp_path: pathlib.Path,
) -> None:
    events = Events()
    queue = await opened(tmp_path / "backend.sqlite3", events)

    def fill_the_disk() -> None:  # the database may not grow any more: as good as a full volume
        assert queue._db is not None
        pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
        queue._db.execute(f"PRAGMA max_page_count = {pages}")

    await queue._run(fill_the_disk)
    assert not await queue.put(batch(5, size=200_000))
    assert events.dropped == [(5, "disk_error")]
    assert (len(queue), queue.bytes) == (0, 0)
    assert await queue.put(batch(1, size=10)), "small rows still fit in the free pages"
    await queue.close()


# -- bounded by bytes on disk, with the whenFull policy ---------------------------------------------------


async def test_refuse_keeps_what_admission_let_in_and_reports_full(tmp_path: pathlib.Path) -> None:
    events = Events()
    queue = await opened(tmp_path / "q.sqlite3", events, maxBytes=1024, whenFull="refuse")
    assert await queue.put(batch(1, size=1000))
    assert await queue.put(batch(2, size=100)), "admitted data is never dropped at the queue"
    assert queue.is_full() and events.dropped == [] and len(queue) == 2
    await queue.close()


async def test_drop_oldest_deletes_the_oldest_rows_to_make_room(tmp_path: pathlib.Path) -> None:
    events = Events()
    path = tmp_path / "q.sqlite3"
    queue = await opened(path, events, maxBytes=1024, whenFull="dropOldest")
    for tag in (1, 2, 3, 4):
        assert await queue.put(batch(tag, size=400))
    assert events.dropped == [(1, "queue_full_drop_oldest"), (2, "queue_full_drop_oldest")]
    await queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT items FROM batches ORDER BY id").fetchall() == [(3,), (4,)]


async def test_block_holds_the_producer_until_a_consumer_is_done_with_a_batch(tmp_path: pathlib.Path) -> None:
    queue = await opened(tmp_path / "q.sqlite3", maxBytes=1024, whenFull="block")
    await queue.put(batch(1, size=1000))
    blocked = asyncio.create_task(queue.put(batch(2, size=1000)))
    await eventually(lambda: queue.blocked_producers == 1, what="the producer waiting for room")
    assert not blocked.done()
    taken = await queue.get()
    assert taken.items == 1
    assert not blocked.done(), "a batch being exported still holds its room"
    await queue.done(taken)
    assert await blocked
    assert (await queue.get()).items == 2
    await queue.close()


@pytest.mark.parametrize("items_bound", [True, False], ids=["by-items", "by-bytes"])
async def test_is_full_reports_either_bound(tmp_path: pathlib.Path, items_bound: bool) -> None:
    fields = {"maxItems": 3} if items_bound else {"maxBytes": 1024}
    queue = await opened(tmp_path / "q.sqlite3", **fields)
    await queue.put(batch(3, size=1024 if not items_bound else 10))
    assert queue.is_full()
    await queue.close()


async def test_a_put_cancelled_while_its_row_is_written_leaves_the_row_queued(tmp_path: pathlib.Path) -> None:
    """A row on disk is always in the queue's index too: cancelling `put` once the write is under way
    cannot leave a row that only the next start would find."""
    queue = await opened(tmp_path / "q.sqlite3")
    busy = threading.Event()
    occupied = asyncio.get_running_loop().run_in_executor(queue._thread, busy.wait, 30.0)
    putting = asyncio.create_task(queue.put(batch(7)))
    await eventually(lambda: queue.bytes == 100, what="room reserved, the insert queued behind the thread")
    putting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await putting
    busy.set()
    await occupied
    taken = await asyncio.wait_for(queue.get(), 10)
    assert (taken.items, taken.payload()) == (7, bytes([7]) * 100)
    await queue.done(taken)
    assert await queue.close() == 0, "nothing left behind for the next start"


async def test_stop_waiting_makes_a_blocked_producer_drop_its_batch_as_shutdown(
    tmp_path: pathlib.Path,
) -> None:
    events = Events()
    queue = await opened(tmp_path / "q.sqlite3", events, maxBytes=1024, whenFull="block")
    await queue.put(batch(1, size=1000))
    blocked = asyncio.create_task(queue.put(batch(2, size=1000)))
    await eventually(lambda: queue.blocked_producers == 1, what="the producer waiting for room")
    queue.stop_waiting()
    assert not await blocked
    assert events.dropped == [(2, "shutdown")]
    assert await queue.close() == 1, "only the row that was written is on disk"
