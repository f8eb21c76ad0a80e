"""Which queue an exporter's settings call for: in memory, or persistent in the queue directory."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

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
        queue_dir / f"{exporter.name}.sqlite3",
        exporter.queue,
        on_drop,
        on_corrupt,
        limiter,
        synchronous_full=exporter.delivery == spec.Delivery.durable,
    )
