"""Persistent queue files no configured exporter opens any more, said out loud.

An exporter's persistent queue is `<queue dir>/<exporter>.sqlite3` (see `exporter.queue.factory`). When a
reload renames or removes the exporter, the retired pipeline goes on sending the file's batches to the old
backend until it is empty or the agent stops; what is left then stays in the file, and after a restart
only an exporter of that name with a persistent queue opens it again. So that durably acknowledged data is
never stranded silently:

- at start, every `*.sqlite3` file of the queue directory that no exporter uses and that holds batches is
  logged (file, batches, items; the event `queue_stranded_<file>`) and shown in
  `otlp_agent_queue_orphaned_items{file}`; a file that cannot be read as a queue is logged;
- at a reload that renames or removes a persistent exporter whose queue is not empty, a log line (the
  event `queue_renamed_<file>`), and the gauge follows the items still in it (those being exported
  included) while the retired pipeline sends them;
- when a config names the exporter again (rename it back), its file is opened and its gauge removed.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable

from otlp_agent.api import spec
from otlp_agent.exporter.queue import factory
from otlp_agent.exporter.queue.base import BatchQueue
from otlp_agent.pipeline.intake import Intake
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics


def persistent(s: spec.OTLPPipelineSpec) -> frozenset[str]:
    """Exporters with a persistent queue: the queue files `s` opens."""
    return frozenset(e.name for e in s.exporters if e.queue.type == spec.QueueType.persistent)


class StrandedQueues:
    """Reports queue files of `queue_dir` that no running exporter opens (see the module docstring)."""

    def __init__(self, queue_dir: pathlib.Path | None, metrics: AgentMetrics) -> None:
        self.queue_dir = queue_dir
        self._gauge = metrics.queue_orphaned
        self._shown: set[str] = set()  # file labels on the gauge

    async def at_start(self, running: spec.OTLPPipelineSpec) -> None:
        if self.queue_dir is None or not self.queue_dir.is_dir():
            return
        for found in await asyncio.to_thread(factory.stranded, self.queue_dir, persistent(running)):
            name = found.path.name
            if found.unreadable:
                message = f"cannot be read as a queue ({found.unreadable})"
                logs.event(
                    f"queue_stranded_{name}", f"{found.path}: {message}; no exporter opens it", file=name
                )
                continue
            self._gauge.labels(name).set(found.items)
            self._shown.add(name)
            logs.event(
                f"queue_stranded_{name}",
                f"{found.path} holds {found.batches} batches ({found.items} items) that no configured "
                f"exporter sends (exporter {found.exporter} was renamed or removed): only an exporter named "
                f"{found.exporter} with a persistent queue sends them; rename it back to recover them",
                file=name,
                batches=found.batches,
                items=found.items,
            )

    def at_reload(self, retired: Intake, running: spec.OTLPPipelineSpec) -> None:
        """After `running` started and `retired` (the previous pipeline) retires."""
        names = persistent(running)
        for name in names:  # opened again by an exporter of that name
            file = _file(name)
            if file in self._shown:
                self._gauge.remove(file)
                self._shown.discard(file)
        for lane in retired.exporters:
            queue = lane.queue
            if self.queue_dir is None or not queue.persistent or lane.name in names or not queue.items:
                continue
            path = factory.queue_file(self.queue_dir, lane.name)
            self._gauge.labels(path.name).set_function(_items_in(queue))
            self._shown.add(path.name)
            logs.event(
                f"queue_renamed_{path.name}",
                f"exporter {lane.name} was renamed or removed with {queue.items} items in its persistent "
                f"queue {path}: the old pipeline goes on sending them to its backend until the queue is "
                "empty or the agent stops; what is left then stays in the file, and only an exporter named "
                f"{lane.name} with a persistent queue sends it (rename it back)",
                file=path.name,
                items=queue.items,
            )


def _file(exporter: str) -> str:
    return factory.queue_file(pathlib.Path(), exporter).name


def _items_in(queue: BatchQueue) -> Callable[[], float]:
    """The items `queue` holds, read when the gauge is scraped."""
    return lambda: queue.items
