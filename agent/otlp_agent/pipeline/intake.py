"""The pipeline between receivers and exporters: enrichment, routing, admission (memory limiter, queue
room) and fan-out.

Without `routes`, every exporter gets every request of its signals: fan-out hands the same bytes object to
every exporter, no copy per exporter. With `routes`, the router says which exporter gets which resource
entries (see `routing`), possibly depending on the client's authenticated tenant; data no route takes is
counted and answered as partial success. With `processors.k8sAttributes`, resources are completed (or
stamped) first (see `enrich`), then the processors run (see `processors.chain`), so routes see the
processed resources.

Admission is per exporter, so tenants are isolated: each exporter's part is accepted if its queue has room,
whatever the others say. A part that does not fit now (`whenFull: refuse`) makes the answer a retryable
refusal for the whole request — the client keeps the data and sends it again — while the parts that did
fit stay accepted; their exporters remember the request's fingerprint (see `fingerprints`) and skip their
part when the same request comes back, so nothing is delivered twice and nothing is lost. A part larger
than its exporter's whole queue can never be accepted: it is rejected for good (partial success, or a
non-retryable error when nothing of the request could be taken). Refusals never name an exporter: on a
shared gateway that would tell one tenant about another's; the agent's log names them.

A client is answered when the strictest delivery mode among its exporters is satisfied (see `delivery`).
The memory limiter is shared by every exporter, so over it the whole request is refused (retryable).

Enrichment and routing walk a request's resource entries in Python (a few to ~20 µs each); a request may
hold up to `maxItemsPerRequest` of them. A request with few resources (at most `INLINE_RESOURCES`, in at
most `INLINE_BYTES`: a few ms at worst) is enriched and routed on the event loop; a larger one on the
worker thread admission uses (`inspection.off_loop`), so no request holds the loop for long. Without
`routes` and `k8sAttributes` none of this runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter import delivery
from otlp_agent.exporter.lane import ExporterLane, Room
from otlp_agent.exporter.memory import MemoryLimiter
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.otlp import errors, inspection, wire
from otlp_agent.otlp.signals import SIGNALS
from otlp_agent.pipeline import enrich, fingerprints, routing
from otlp_agent.pipeline.processors import chain as processors
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: What refused clients are told to wait, in seconds: about one export round-trip.
REFUSAL_RETRY_AFTER = 1.0
#: Largest request enriched and routed on the event loop (larger ones: on the worker thread)...
INLINE_BYTES = inspection.PIECE_BYTES
#: ...and most resource entries it may hold (each costs up to ~20 µs of Python: ~5 ms in all).
INLINE_RESOURCES = 256

_T = TypeVar("_T")

Part = tuple[ExporterLane, bytes, int]


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The answer to a client: how many items were rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""


_ACCEPTED = Accepted()  # everything taken: the common answer, made once
_ROOM, _FULL = Room.yes, Room.full  # (enum members are slow to look up on Python 3.11)


class Intake:
    """Receivers call `consume`; exporters do the rest on their own tasks."""

    def __init__(
        self,
        s: spec.OTLPPipelineSpec,
        metrics: AgentMetrics,
        transports: dict[str, Transport] | None = None,
        queue_dir: pathlib.Path | None = None,
        limiter: MemoryLimiter | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`limiter`: the previous pipeline's after a reload, so both pipelines' bytes count together.
        `environ`: where the downward-API variables are read (os.environ by default)."""
        settings = s.processors.memory_limiter
        self.limiter = limiter or MemoryLimiter(settings.limit, settings.spike_limit)
        self.limiter.configure(settings.limit, settings.spike_limit)
        self.metrics = metrics
        self.exporters = [
            ExporterLane(
                e, s.processors.batch, self.limiter, metrics, (transports or {}).get(e.name), queue_dir
            )
            for e in s.exporters
        ]
        self._targets = {signal: [e for e in self.exporters if signal in e.signals] for signal in Signal}
        self._may_block = any(e.queue.when_full == spec.WhenFull.block for e in s.exporters)
        self._by_name = {e.name: e for e in self.exporters}
        self.router = (
            routing.Router(s.routes, {e.name: e.signals for e in self.exporters}) if s.routes else None
        )
        self.enricher = enrich.for_spec(s, environ)
        self.processors = processors.build(s.processors, metrics)  # None when none is configured
        self.fingerprints = fingerprints.Fingerprints()
        _warn_if_queues_share_memory(s)

    async def start(self) -> None:
        for exporter in self.exporters:
            await exporter.start()

    async def consume(
        self, signal: Signal, payload: bytes, items: int, tenant: str | None = None
    ) -> Accepted:
        """Admit a validated request (from `tenant`, when its client authenticated as one), or raise a
        ReceiveError saying whether to send it again."""
        received = payload
        if self.enricher is not None:
            payload = await _per_resource(self.enricher.apply, payload)
        # -- processors (resource, filter, sampling, attributes; see pipeline/processors) ---------------
        if self.processors is not None:
            payload, items = await self.processors.run(signal, payload, items)
            if not payload:
                return _ACCEPTED  # all filtered or sampled out: the user's choice, not a rejection
        # -- end of processors ---------------------------------------------------------------------------
        if self.router is None:
            targets = self._targets[signal]
            if not targets:
                noun = SIGNALS[signal].item_noun
                return Accepted(
                    items, f"this pipeline has no exporter for {signal.value}; {items} {noun} dropped"
                )
            # Every part is the whole request, so what is rejected never exceeds `items`.
            return await self._deliver(signal, tenant, received, [(e, payload, items) for e in targets])
        routed = await _per_resource(functools.partial(self.router.route, signal), payload, items, tenant)
        parts = [(self._by_name[name], data, n) for name, (data, n) in routed.deliveries.items()]
        answer = await self._deliver(signal, tenant, received, parts) if parts else _ACCEPTED
        routing.count(self.metrics, signal, routed)
        if not routed.unrouted:
            return answer
        noun = SIGNALS[signal].item_noun
        message = f"{routed.unrouted} {noun} matched no route and this pipeline has no default route; dropped"
        logs.event(f"unrouted_{signal.value}", message, signal=signal.value)
        rejected = min(items, answer.rejected + routed.unrouted)
        return Accepted(rejected, "; ".join(m for m in (message, answer.message) if m))

    async def _deliver(
        self, signal: Signal, tenant: str | None, received: bytes, parts: list[Part]
    ) -> Accepted:
        """Hand each exporter its part if it has room (skipping exporters that hold it from an earlier
        attempt of the same request), then wait for what the delivery modes require. `received` is the
        request as the client sent it (its fingerprint)."""
        key = None
        held: dict[str, fingerprints.Futures] = {}  # exporters holding their part, and what to wait for
        if self.fingerprints.active:  # never on the fast path: nothing is remembered there
            key = self.fingerprints.key(signal, tenant, received)
            held = self.fingerprints.taken(key)
            if held:
                self._count_held(signal, [part for part in parts if part[0].name in held])
                parts = [part for part in parts if part[0].name not in held]
        if parts and not self.limiter.would_admit(sum(len(data) for _, data, _ in parts)):
            raise errors.refused(
                f"memory limit reached ({self.limiter.held} bytes held); retry later",
                REFUSAL_RETRY_AFTER,
                "memory_limit",
            )
        full: list[Part] = []
        never: list[Part] = []
        remember = False
        for exporter, data, items in self._blocking_last(parts) if self._may_block else parts:
            room = exporter.room_for(len(data), items)  # checked and taken with no await in between
            if room is _ROOM:
                futures = held[exporter.name] = await exporter.accept(signal, data, items)
                remember = remember or (bool(futures) and exporter.delivery is spec.Delivery.end_to_end)
            else:
                (full if room is _FULL else never).append((exporter, data, items))
        if (full or remember) and held:
            key = key or self.fingerprints.key(signal, tenant, received)
            self.fingerprints.remember(key, held.items())
        if full:
            raise self._queue_full(signal, full, held)
        if any(held.values()):
            await self._wait(signal, tenant, received, key, held)
        return self._too_large(signal, never, held) if never else _ACCEPTED

    @staticmethod
    def _blocking_last(parts: list[Part]) -> list[Part]:
        """Exporters that may make the request wait for room (`block`) last, so the others have theirs."""
        return sorted(parts, key=lambda part: part[0].queue.when_full == spec.WhenFull.block)

    async def _wait(
        self,
        signal: Signal,
        tenant: str | None,
        received: bytes,
        key: bytes | None,
        held: dict[str, fingerprints.Futures],
    ) -> None:
        """Wait for the batches holding the request; if the client must send it again (a part was not
        delivered) or went away, remember who holds their part."""
        waits = [future for futures in held.values() for future in futures]
        try:
            await delivery.wait_all(waits)
        except (errors.ReceiveError, asyncio.CancelledError):
            key = key or self.fingerprints.key(signal, tenant, received)
            self.fingerprints.remember(key, held.items())  # failed batches are forgotten at lookup
            raise

    def _enqueue_failed(self, signal: Signal, parts: list[Part]) -> None:
        """Parts an exporter's queue could not take: the collector's enqueue failures."""
        for exporter, _, items in parts:
            self.metrics.enqueue_failed.labels(exporter.name, signal.value).inc(items)

    def _queue_full(
        self, signal: Signal, full: list[Part], held: dict[str, fingerprints.Futures]
    ) -> errors.ReceiveError:
        self._enqueue_failed(signal, full)
        names = sorted(exporter.name for exporter, _, _ in full)
        logs.event(
            f"queue_full_{signal.value}",
            f"exporters {', '.join(names)}: queue full; the client is told to send the request again "
            f"({len(held)} other exporters took their part and will skip it then)",
            exporters=names,
        )
        accepted = " (what was accepted will not be taken twice if the same request is sent again)"
        return errors.refused(
            f"part of this request does not fit an exporter's queue now; retry later"
            f"{accepted if held else ''}",
            REFUSAL_RETRY_AFTER,
            "queue_full",
        )

    def _too_large(
        self, signal: Signal, never: list[Part], held: dict[str, fingerprints.Futures]
    ) -> Accepted:
        self._enqueue_failed(signal, never)
        names = sorted(exporter.name for exporter, _, _ in never)
        # Fan-out hands several exporters the same bytes: count those items once (consume caps the total).
        rejected = sum({data: items for _, data, items in never}.values())
        noun = SIGNALS[signal].item_noun
        queue = never[0][0].queue
        message = (
            f"{rejected} {noun} are more than an exporter's queue can ever hold (queue.maxBytes "
            f"{queue.max_bytes}, maxItems {queue.max_items}); sending them again cannot help"
        )
        logs.event(f"too_large_for_queue_{signal.value}", f"exporters {', '.join(names)}: {message}")
        if not held:
            raise errors.too_large(message)
        return Accepted(rejected, message)

    def _count_held(self, signal: Signal, parts: list[Part]) -> None:
        for exporter, _, items in parts:
            self.metrics.deduplicated_items.labels(exporter.name, signal.value).inc(items)

    def abandon_waiters(self, message: str) -> None:
        for exporter in self.exporters:
            exporter.abandon_waiters(message)

    async def flush(self) -> None:
        for exporter in self.exporters:
            await exporter.flush()

    async def drain(self, deadline: float | None) -> bool:
        results = [await exporter.drain(deadline) for exporter in self.exporters]
        return all(results)

    async def stop(self) -> None:
        for exporter in self.exporters:
            await exporter.stop()

    async def stop_exporters(self, names: frozenset[str]) -> None:
        for exporter in self.exporters:
            if exporter.name in names:
                await exporter.stop()

    async def retire(self, handed_over: frozenset[str]) -> None:
        """After a reload, once `flush` and `stop_exporters(handed_over)` ran: export the rest, then stop.

        Exporters in `handed_over` had a persistent queue that the new pipeline reopened (an export that was
        in flight is sent again from there). The others drain to their backend for as long as that takes
        (the agent's shutdown bounds it), so a reload drops no queued data.
        """
        for exporter in self.exporters:
            if exporter.name not in handed_over:
                await exporter.drain(None)
        await self.stop()


async def _per_resource(work: Callable[..., _T], payload: bytes, *args: Any) -> _T:
    """`work(payload, *args)`, per-resource work: on the event loop for a request of few resources, else on
    the worker thread (the loop keeps serving others meanwhile)."""
    if len(payload) <= INLINE_BYTES and not _more_entries(payload, INLINE_RESOURCES):
        return work(payload, *args)
    return await inspection.off_loop(work, payload, *args)


def _more_entries(payload: bytes, limit: int) -> bool:
    """Whether `payload` holds more than `limit` top-level fields (resource entries), looking at no more."""
    return sum(1 for _ in itertools.islice(wire.fields(payload), limit + 1)) > limit


def _warn_if_queues_share_memory(s: spec.OTLPPipelineSpec) -> None:
    """Isolation holds for memory only if one exporter's full memory queue cannot take what the others need:
    say so at start when the memory queues together may hold more than the limiter lets in."""
    in_memory = [e for e in s.exporters if e.queue.type == spec.QueueType.memory]
    total = sum(e.queue.max_bytes for e in in_memory)
    limiter = s.processors.memory_limiter
    if len(in_memory) > 1 and total > limiter.limit - limiter.spike_limit:
        logs.event(
            "memory_queues_exceed_limit",
            f"the memory queues of {len(in_memory)} exporters may hold {total} bytes, more than the memory "
            f"limiter admits ({limiter.limit - limiter.spike_limit}): one exporter whose backend is down can "
            "fill the memory the others need; lower queue.maxBytes or use persistent queues",
        )
