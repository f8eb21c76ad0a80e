"""Which queue an exporter's settings call for: in memory, or persistent in the queue directory; and which
files of the queue directory no exporter opens (`stranded`).

An exporter's persistent queue is the file `<queue dir>/<exporter name>.sqlite3`: renaming or removing the
exporter leaves its file behind, and nothing but an exporter of that name ever opens it again. `stranded`
finds such files that still hold batches, so the agent can say so.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
from collections.abc import Callable, Collection

from otlp_agent.api import spec
from otlp_agent.exporter import memory
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.queue.base import BatchQueue
from otlp_agent.exporter.queue.memory import MemoryQueue
from otlp_agent.exporter.queue.persistent import PersistentQueue


class NoQueueDirectory(Exception):
    """A persistent queue was asked for, but the agent was given no directory to keep it in."""


def make_queue(
    exporter: spec.Exporter,
    queue_dir: pathlib.Path | None,
    on_drop: Callable[[Batch, str], None],
    on_corrupt: Callable[[str], None],
    limiter: memory.MemoryLimiter,
) -> BatchQueue:
    """The queue of `exporter`; `on_drop` hears of batches the policy drops, `on_corrupt` of unreadable
    rows; a persistent queue leases batches it reads back from `limiter`. Raises NoQueueDirectory for a
    persistent queue without `queue_dir`."""
    if exporter.queue.type == spec.QueueType.memory:
        return MemoryQueue(exporter.queue, on_drop)
    if queue_dir is None:
        raise NoQueueDirectory(
            f"exporter {exporter.name}: a persistent queue needs a directory: "
            "pass --queue-dir or set OTLP_AGENT_QUEUE_DIR"
        )
    return PersistentQueue(
        queue_file(queue_dir, exporter.name),
        exporter.queue,
        on_drop,
        on_corrupt,
        limiter,
        synchronous_full=exporter.delivery == spec.Delivery.durable,
    )


_SUFFIX = ".sqlite3"


def queue_file(queue_dir: pathlib.Path, exporter: str) -> pathlib.Path:
    """Where the persistent queue of the exporter named `exporter` lives."""
    return queue_dir / f"{exporter}{_SUFFIX}"


@dataclasses.dataclass(frozen=True)
class Stranded:
    """A queue file no configured exporter opens: its batches (rows) and items, or why it cannot be read."""

    path: pathlib.Path
    batches: int = 0
    items: int = 0
    unreadable: str = ""

    @property
    def exporter(self) -> str:
        """The exporter name that would open this file again."""
        return self.path.name.removesuffix(_SUFFIX)


def stranded(queue_dir: pathlib.Path, exporters: Collection[str]) -> list[Stranded]:
    """The `*.sqlite3` files of `queue_dir` that none of `exporters` (the names of the exporters with a
    persistent queue) opens, and that hold batches or cannot be read; by name. Blocking (SQLite): call it
    off the event loop."""
    in_use = {queue_file(queue_dir, name).name for name in exporters}
    found = []
    for path in sorted(queue_dir.glob(f"*{_SUFFIX}")):
        if path.name in in_use or not path.is_file():
            continue
        try:
            batches, items = _count(path)
        except sqlite3.Error as exc:  # not a queue file (or not one this agent can read)
            found.append(Stranded(path, unreadable=str(exc)))
            continue
        if batches:
            found.append(Stranded(path, batches, items))
    return found


def _count(path: pathlib.Path) -> tuple[int, int]:
    """Rows and items in a queue file. Opened read-write (never created) so that, as the last connection,
    SQLite folds its WAL back in and removes its -wal and -shm files: the directory is left as it was."""
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)
    try:
        batches, items = db.execute("SELECT COUNT(*), COALESCE(SUM(items), 0) FROM batches").fetchone()
    finally:
        db.close()
    return int(batches), int(items)
