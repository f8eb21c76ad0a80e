"""The persistent queue: an exporter's batches in SQLite on a volume, so restarts and crashes lose nothing.

On-disk contract (format 2, stored as `PRAGMA user_version = 2`):
- One database per exporter: `<queue dir>/<exporter name>.sqlite3`, plus SQLite's `-wal` and `-shm` files.
  The queue dir is `--queue-dir` or `$OTLP_AGENT_QUEUE_DIR` (the operator mounts a volume there).
- Journal mode WAL. `synchronous=FULL` when the exporter acknowledges `durable` (a commit survives power
  loss), `NORMAL` otherwise (a commit survives the process being killed, SIGKILL included).
- Table `batches(id INTEGER PRIMARY KEY AUTOINCREMENT, signal TEXT, items INTEGER, size INTEGER,
  crc32 INTEGER, payload BLOB, created REAL)`: one row per batch; `payload` is the batch as one serialized,
  uncompressed Export*ServiceRequest, `size` its length, `crc32` its `zlib.crc32`, `created` when it was
  batched (Unix time, for `queue.maxAge`). Format 1 files (no `created`) are upgraded in place at open; their
  rows count as batched at that open.
- A row is inserted and committed when the batcher hands the batch over (in the exporter lane's task, so a
  client giving up does not interrupt it; and a row once written is always in the queue's index, never
  left for the next start only), and deleted once the batch's outcome is final: acknowledged by the
  backend, refused by it for good, given up after `retry.maxElapsed` (delivery `fast` only: `durable` /
  `endToEnd` put it back in the queue instead), older than `queue.maxAge`, or evicted by
  `whenFull: dropOldest` (all counted). A row whose export was under way when
  the agent stopped or died stays, and is sent again after the restart: at least once, so duplicates are
  possible, losses not.
- Rows are exported in id order: oldest first, including the backlog found at start; a batch put back after
  `maxElapsed` goes behind what is waiting (until the next start, which goes by id again).
- A row that cannot be read back (checksum, size or signal wrong) is deleted, logged and counted in
  `otlp_agent_queue_corrupt_batches_total`; the queue goes on. A file that is not a SQLite database is
  renamed `<name>.sqlite3.corrupt-<unix time>` and a new database is started.

Memory: a batch handed to `put` gives its lease back once its row is committed (the payload leaves
memory); a batch read back by `get` gets a new lease from the memory limiter, released by the lane when
the export's outcome is final (or the batch is requeued: its row stays, its payload leaves memory).

Bounds: `queue.maxBytes` / `queue.maxItems` bound the payload bytes / items of the rows on disk, batches
being exported included (SQLite's own overhead comes on top). A backlog found at start is taken whole even
if the bounds were lowered meanwhile; admission refuses until it is under them again. `whenFull` applies as
for the memory queue. Waiting payloads are not kept in memory: only (id, signal, items, size, created) per
row.
All SQLite work runs on one thread per queue (its connection is used only there), never on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import pathlib
import sqlite3
import time
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from otlp_agent.api import spec
from otlp_agent.exporter import delivery, memory
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.queue.base import BoundedQueue, Changed
from otlp_agent.telemetry import logs

FORMAT_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    items INTEGER NOT NULL,
    size INTEGER NOT NULL,
    crc32 INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created REAL
)
"""
_WAL_SIZE_LIMIT = 16 * 1024 * 1024  # the WAL file is truncated back to this after checkpoints
_T = TypeVar("_T")


@dataclasses.dataclass
class _Entry:
    """A waiting row, as kept in memory (its payload stays on disk)."""

    key: int
    signal: spec.Signal | None  # None: not a known signal (a corrupt row)
    items: int
    size: int
    created: float  # time.monotonic() when it was batched
    done: asyncio.Future[None] | None = None


class PersistentQueue(BoundedQueue):
    """A FIFO of batches in one SQLite file; same interface as `queues.MemoryQueue`. Call `open` first."""

    persistent = True

    def __init__(
        self,
        path: pathlib.Path,
        settings: spec.Queue,
        on_drop: Callable[[Batch, str], None],
        on_corrupt: Callable[[str], None],
        limiter: memory.MemoryLimiter,
        synchronous_full: bool = False,
    ) -> None:
        self.path = path
        self._limiter = limiter
        self.max_bytes = settings.max_bytes
        self.max_items = settings.max_items
        self.when_full = settings.when_full
        self._on_drop = on_drop
        self._on_corrupt = on_corrupt
        self._synchronous = "FULL" if synchronous_full else "NORMAL"
        self._pending: collections.deque[_Entry] = collections.deque()
        self.bytes = 0  # rows on disk: waiting and being exported
        self.items = 0
        self.blocked_producers = 0
        self.recovered = 0  # rows found at open
        self._changed = Changed()
        self._put_lock = asyncio.Lock()  # puts are committed in the order they arrive
        self._opened = asyncio.Event()  # after a reload, puts may come before the file is handed over
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"queue-{path.stem}")
        self._db: sqlite3.Connection | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database and load the backlog's index."""
        rows = await self._run(self._open_db)
        for key, signal, items, size, created in rows:
            self._pending.append(_Entry(key, _signal(signal), items, size, _monotonic(created)))
            self.bytes += size
            self.items += items
        self.recovered = len(rows)
        self._opened.set()

    def stop_waiting(self) -> None:
        super().stop_waiting()
        self._opened.set()  # a queue never opened: waiting puts drop their batch (`put`)

    async def close(self) -> int:
        """Close the database; everything not yet exported stays on disk for the next start. Returns the
        rows left on disk: waiting ones and those whose export was under way (the lane stopped them)."""
        for entry in self._pending:
            _refuse_waiters(entry.done, "the agent stopped before this data was exported")
        left = await self._run(self._close_db)
        self._thread.shutdown(wait=True)
        return left

    # -- the queue ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pending)

    def put_nowait(self, batch: Batch) -> bool | None:
        return None  # a row is written on the queue's thread: always `put`

    async def put(self, batch: Batch) -> bool:
        await self._opened.wait()
        async with self._put_lock:
            if self._db is None:  # stopped before it was ever opened (see `stop_waiting`)
                self._on_drop(batch, "shutdown")
                return False
            room, evicted = await self._reserve(batch)  # a cancel here has changed nothing
            # From here to the end, no await happens before the row's fate is settled in `_written`: a row
            # on disk is always in `_pending` too (or is never written), even if this task is cancelled.
            for entry in evicted:
                _refuse_waiters(entry.done, "queue full: dropped to make room for newer data")
                self._on_drop(_as_batch(entry), "queue_full_drop_oldest")
                self._submit(self._delete, entry.key)  # the queue's one thread runs them before the insert
            if not room:
                self._on_drop(batch, self._no_room_reason())
                return False
            try:
                written = self._submit(self._insert, batch)
            except BaseException:  # the thread is gone (the queue was closed under this put)
                self._unreserve(batch.size, batch.items)
                raise
            written.add_done_callback(functools.partial(self._written, batch))
            try:
                await asyncio.shield(written)
            except sqlite3.Error:  # counted in `_written`
                return False
            return True

    def _written(self, batch: Batch, written: asyncio.Future[int]) -> None:
        """The insert ended: queue the row, or count the batch as lost (on the loop, whether or not the
        `put` that wrote it is still waiting)."""
        error = None if written.cancelled() else written.exception()
        if written.cancelled() or error is not None:
            self._unreserve(batch.size, batch.items)
            if isinstance(error, sqlite3.Error):  # e.g. a full volume: this batch is lost, the queue goes on
                logs.event("queue_write_failed", f"cannot write to {self.path}: {error}")
                self._on_drop(batch, "disk_error")
            return  # anything else is raised by `put` (the lane counts it)
        batch.lease.release()  # the row holds the data now
        self._pending.append(
            _Entry(written.result(), batch.signal, batch.items, batch.size, batch.created, batch.done)
        )
        self._changed.notify_all()

    async def _reserve(self, batch: Batch) -> tuple[bool, list[_Entry]]:
        """Reserve room for `batch` under the policy: whether there is room, and the entries evicted for it
        (to delete from disk)."""
        evicted: list[_Entry] = []

        def evict_oldest() -> bool:
            if not self._pending:
                return False
            entry = self._pending.popleft()
            self._unreserve(entry.size, entry.items)
            evicted.append(entry)
            return True

        room = await self._make_room(batch, evict_oldest)
        if room:
            self.bytes += batch.size
            self.items += batch.items
        return room, evicted

    def _unreserve(self, size: int, items: int) -> None:
        self.bytes -= size
        self.items -= items

    async def get(self) -> Batch:
        while True:
            while not self._pending:
                await self._changed.wait()
            entry = self._pending.popleft()  # still counted in the bound until done / requeue
            try:
                payload = await self._run(self._read, entry.key)
            except sqlite3.DatabaseError:
                payload = None
            if entry.signal is not None and payload is not None and len(payload) == entry.size:
                batch = Batch(
                    entry.signal, [payload], entry.items, entry.size, entry.created, entry.done, entry.key
                )
                batch.lease = self._limiter.lease(entry.size)
                return batch
            await self._forget(entry.size, entry.items)
            await self._run(self._delete, entry.key)
            _refuse_waiters(entry.done, "the batch holding this data could not be read back")
            self._on_corrupt(f"row {entry.key} of {self.path} is corrupt; skipped")

    async def done(self, batch: Batch) -> None:
        if batch.key is not None:
            await self._run(self._delete, batch.key)
        await self._forget(batch.size, batch.items)

    async def requeue(self, batch: Batch) -> None:
        """The row stays on disk; its entry goes back behind what is waiting (read again when taken)."""
        assert batch.key is not None
        self._pending.append(
            _Entry(batch.key, batch.signal, batch.items, batch.size, batch.created, batch.done)
        )
        self._changed.notify_all()

    async def _forget(self, size: int, items: int) -> None:
        self._unreserve(size, items)
        self._room_made()

    # -- SQLite, on the queue's own thread ------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        return await self._submit(function, *args)

    def _submit(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def _open_db(self) -> list[tuple[int, str, int, int, float | None]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if self._db is not None:
                self._db.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.path.rename(aside)
            logs.event(
                "queue_file_corrupt", f"{self.path} is not a usable database ({exc}); moved to {aside}"
            )
            return self._connect()

    def _connect(self) -> list[tuple[int, str, int, int, float | None]]:
        db = self._db = sqlite3.connect(
            self.path, isolation_level=None
        )  # autocommit: one statement, one commit
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(batches)")}
        if "created" not in columns:  # format 1
            db.execute("ALTER TABLE batches ADD COLUMN created REAL")
        db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        return list(db.execute("SELECT id, signal, items, size, created FROM batches ORDER BY id"))

    def _insert(self, batch: Batch) -> int:
        assert self._db is not None
        payload = batch.payload()
        created = time.time() - (time.monotonic() - batch.created)
        cursor = self._db.execute(
            "INSERT INTO batches (signal, items, size, crc32, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
            (batch.signal.value, batch.items, len(payload), zlib.crc32(payload), payload, created),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _read(self, key: int) -> bytes | None:
        assert self._db is not None
        row = self._db.execute("SELECT crc32, payload FROM batches WHERE id = ?", (key,)).fetchone()
        if row is None or not isinstance(row[1], bytes) or zlib.crc32(row[1]) != row[0]:
            return None
        return row[1]

    def _delete(self, key: int) -> None:
        assert self._db is not None
        try:
            self._db.execute("DELETE FROM batches WHERE id = ?", (key,))
        except sqlite3.Error as exc:  # the row is sent again after a restart: a duplicate, not a loss
            logs.event("queue_delete_failed", f"cannot delete row {key} from {self.path}: {exc}")

    def _close_db(self) -> int:
        """Close the connection; the number of rows it leaves on disk."""
        if self._db is None:
            return 0
        try:
            (left,) = self._db.execute("SELECT COUNT(*) FROM batches").fetchone()
        except sqlite3.Error:
            left = len(self._pending)
        self._db.close()
        self._db = None
        return int(left)


def _signal(value: str) -> spec.Signal | None:
    try:
        return spec.Signal(value)
    except ValueError:
        return None


def _monotonic(created: float | None) -> float:
    """A row's Unix `created` time on the time.monotonic() scale (a format 1 row: now)."""
    now = time.monotonic()
    return now if created is None else now - max(0.0, time.time() - created)


def _as_batch(entry: _Entry) -> Batch:
    """An evicted row as the drop counters see it (its payload is not read back)."""
    return Batch(entry.signal or spec.Signal.traces, [], entry.items, entry.size, entry.created)


def _refuse_waiters(future: asyncio.Future[None] | None, message: str) -> None:
    delivery.settle(future, delivery.not_delivered(message))
