"""`factory.stranded`: which queue files of the queue directory no configured exporter opens, with how many
batches and items they hold; files of configured exporters, empty files and moved-aside corrupt files are
not reported, an unreadable one is, and looking leaves the directory as it was."""

from __future__ import annotations

import pathlib

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.queue import factory
from otlp_agent.exporter.queue.persistent import PersistentQueue


async def queue_file(path: pathlib.Path, *items: int) -> None:
    """A queue file as an exporter leaves it at stop: one batch of each of `items` items."""
    settings = spec.Queue.model_validate({"type": "persistent", "storageSize": "1Gi"})
    queue = PersistentQueue(
        path, settings, lambda batch, reason: None, lambda message: None, MemoryLimiter(1 << 30, 0)
    )
    await queue.open()
    for count in items:
        assert await queue.put(Batch(spec.Signal.traces, [b"x" * 10], items=count, size=10))
    await queue.close()


def listing(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_files_no_exporter_opens_are_found_with_their_batches_and_items(tmp_path: pathlib.Path) -> None:
    await queue_file(tmp_path / "kept.sqlite3", 5)  # a configured exporter's: not stranded
    await queue_file(tmp_path / "vendor.sqlite3", 10, 20, 30)  # the exporter was renamed
    await queue_file(tmp_path / "drained.sqlite3")  # nothing left in it: nothing to say
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database" * 100)
    (tmp_path / "old.sqlite3.corrupt-1700000000").write_bytes(b"moved aside earlier")
    before = listing(tmp_path)

    found = factory.stranded(tmp_path, {"kept", "unrelated"})

    assert [(f.path.name, f.exporter, f.batches, f.items) for f in found if not f.unreadable] == [
        ("vendor.sqlite3", "vendor", 3, 60)
    ]
    [junk] = [f for f in found if f.unreadable]
    assert junk.path.name == "junk.sqlite3" and "not a database" in junk.unreadable
    assert listing(tmp_path) == before, "no -wal / -shm files left behind"


async def test_a_stranded_file_is_opened_again_by_an_exporter_of_its_name(tmp_path: pathlib.Path) -> None:
    await queue_file(tmp_path / "vendor.sqlite3", 7)
    assert [f.batches for f in factory.stranded(tmp_path, set())] == [1]
    assert factory.stranded(tmp_path, {"vendor"}) == []
    assert factory.queue_file(tmp_path, "vendor") == tmp_path / "vendor.sqlite3"
