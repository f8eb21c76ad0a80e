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
`routes`, `k8sAttributes` and processors none of this runs. Meanwhile the request is counted by the memory
limiter (`MemoryLimiter.in_progress`, with requests being received): its receiver gave its reservation back
when it handed the request over, and a flood of large requests waiting for the worker thread must not hold
bytes the limiter does not see. The lanes count the parts from the moment they take them.

Reload: the intake counts the requests it is taking (from `consume` until their parts are in the lanes'
batchers), so the agent can wait for them before it flushes the old pipeline and hands its persistent
queues over (`quiesce`, `hand_over`); then the old pipeline exports the rest and stops (`retire`).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from otlp_agent.exporter.memory import Lease, MemoryLimiter
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
#: How often a retired pipeline's drain looks whether a later reload handed its exporter over (seconds).
_HAND_OVER_CHECK = 0.5
#: How often a hand-over looks whether what requests still being taken were handing over is in (seconds).
_SETTLE_CHECK = 0.01

_T = TypeVar("_T")

Part = tuple[ExporterLane, bytes, int]


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The answer to a client: how many items were rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""


_ACCEPTED = Accepted()  # everything taken: the common answer, made once


@dataclasses.dataclass
class _Taken:
    """A request whose parts are in the lanes, and what its answer still waits for (see `Intake._answer`)."""

    signal: Signal
    tenant: str | None
    received: bytes  # as the client sent it: its fingerprint
    key: bytes | None
    held: dict[str, fingerprints.Futures]  # exporters holding their part, and what to wait for
    never: list[Part]  # parts larger than their exporter's whole queue
    unrouted: tuple[int, int, str] | tuple[()] = ()  # with routes: (items, unrouted, message)


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
        self._plain = self.router is None and self.enricher is None and self.processors is None
        self._arriving = 0  # requests in `consume` whose parts are not all in the lanes yet
        self._quiet: asyncio.Future[None] | None = None  # resolved when `_arriving` falls to 0
        self._handed_over: frozenset[str] = frozenset()  # exporters whose persistent queue went on
        _warn_if_queues_share_memory(s)

    async def start(self) -> None:
        for exporter in self.exporters:
            await exporter.start()

    async def consume(
        self, signal: Signal, payload: bytes, items: int, tenant: str | None = None
    ) -> Accepted:
        """Admit a validated request (from `tenant`, when its client authenticated as one), or raise a
        ReceiveError saying whether to send it again."""
        self._arriving += 1  # until its parts are in the lanes: what a reload waits for (`quiesce`)
        try:
            targets = self._targets[signal]
            if self._plain and targets:  # the fast path: every exporter of the signal gets the request whole
                taken = await self._deliver(signal, tenant, payload, [(e, payload, items) for e in targets])
            else:
                taken = await self._take_counted(signal, payload, items, tenant)
        finally:
            self._arriving -= 1
            if not self._arriving and self._quiet is not None and not self._quiet.done():
                self._quiet.set_result(None)
        return taken if isinstance(taken, Accepted) else await self._answer(taken)

    async def _take_counted(
        self, signal: Signal, payload: bytes, items: int, tenant: str | None
    ) -> Accepted | _Taken:
        """`_take`, with the request counted by the limiter until the lanes take its parts (see the module
        docstring); a request cancelled meanwhile stays counted until the worker thread is past it."""
        working = self.limiter.in_progress(len(payload))
        release = working.release
        try:
            return await self._take(signal, payload, items, tenant, working)
        except asyncio.CancelledError:  # its client left: a job on the worker thread may still hold it
            release = functools.partial(inspection.after_worker, working.release)
            raise
        finally:
            release()

    async def _take(
        self, signal: Signal, payload: bytes, items: int, tenant: str | None, working: Lease
    ) -> Accepted | _Taken:
        """Enrich, process, route and hand each exporter its part: the answer, or what it still waits for.
        `working` counts the request until then."""
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
            return await self._deliver(
                signal, tenant, received, [(e, payload, items) for e in targets], working
            )
        routed = await _per_resource(functools.partial(self.router.route, signal), payload, items, tenant)
        parts = [(self._by_name[name], data, n) for name, (data, n) in routed.deliveries.items()]
        taken = await self._deliver(signal, tenant, received, parts, working) if parts else _ACCEPTED
        routing.count(self.metrics, signal, routed)
        if not routed.unrouted:
            return taken
        noun = SIGNALS[signal].item_noun
        message = f"{routed.unrouted} {noun} matched no route and this pipeline has no default route; dropped"
        logs.event(f"unrouted_{signal.value}", message, signal=signal.value)
        if isinstance(taken, _Taken):
            taken.unrouted = (items, routed.unrouted, message)
            return taken
        return _with_unrouted(taken, items, routed.unrouted, message)

    async def _answer(self, taken: _Taken) -> Accepted:
        """Wait for what the delivery modes require, then answer (raising a ReceiveError to refuse)."""
        if any(taken.held.values()):
            await self._wait(taken.signal, taken.tenant, taken.received, taken.key, taken.held)
        answer = self._too_large(taken.signal, taken.never, taken.held) if taken.never else _ACCEPTED
        return _with_unrouted(answer, *taken.unrouted) if taken.unrouted else answer

    async def _deliver(
        self,
        signal: Signal,
        tenant: str | None,
        received: bytes,
        parts: list[Part],
        working: Lease | None = None,
    ) -> Accepted | _Taken:
        """Hand each exporter its part if it has room (skipping exporters that hold it from an earlier
        attempt of the same request): the answer, or what it still waits for (`_answer`). `received` is
        the request as the client sent it (its fingerprint); `working`, what counted it until now."""
        if working is not None:
            working.release()  # the lanes count the parts from here: not twice in the check below
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
                try:
                    futures = await exporter.accept(signal, data, items)
                except Exception:
                    if exporter.name not in self._handed_over:
                        raise
                    futures = []  # its lane stopped under it: refused just below
                if self._handed_over and exporter.name in self._handed_over:
                    raise _too_late()
                held[exporter.name] = futures
                remember = remember or (bool(futures) and exporter.delivery is spec.Delivery.end_to_end)
            else:
                (full if room is _FULL else never).append((exporter, data, items))
        if (full or remember) and held:
            key = key or self.fingerprints.key(signal, tenant, received)
            self.fingerprints.remember(key, held.items())
        if full:
            raise self._queue_full(signal, full, held)
        if never or any(held.values()):
            return _Taken(signal, tenant, received, key, held, never)
        return _ACCEPTED

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

    async def quiesce(self, timeout: float | None) -> int:
        """Wait until no request is being taken (in `consume`, up to the moment its parts are in the lanes'
        batchers), for at most `timeout` seconds (None: no limit); how many still are.

        After a reload the receivers send to the new pipeline, so none enters this one any more: those
        already in must be in the batchers before they are flushed and persistent queues handed over."""
        if self._arriving:
            if self._quiet is None or self._quiet.done():
                self._quiet = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._quiet), timeout)
        return self._arriving

    async def hand_over(self, names: frozenset[str]) -> None:
        """Flush and stop the exporters `names` that have a persistent queue, so a new pipeline can open
        their files (after a reload). From the moment this is called, a request still being taken (see
        `quiesce`) whose part reaches one of them is refused, so its client sends it again; what reached
        them before is written to the file before it closes (see `_settle`)."""
        persistent = {e.name for e in self.exporters if e.name in names and e.queue.persistent}
        persistent -= self._handed_over
        if not persistent:
            return
        self._handed_over |= persistent
        for exporter in self.exporters:
            if exporter.name in persistent:
                await _settle(exporter)
                await exporter.stop()

    async def retire(self) -> None:
        """After a reload, once `hand_over` ran: export the rest, then stop.

        Exporters handed over had a persistent queue that the new pipeline reopened (an export that was in
        flight is sent again from there); a later reload may hand over more of them (an exporter renamed
        back), which then stop draining here. The others drain to their backend for as long as that takes
        (the agent's shutdown bounds it), so a reload drops no queued data. Requests that were still being
        taken when the reload stopped waiting for them (`quiesce`) are waited for, and what they added is
        flushed and drained too.
        """
        await self._drain_retired()
        await self.quiesce(None)
        await self._drain_retired(flush=True)
        await self.stop()

    async def _drain_retired(self, flush: bool = False) -> None:
        for exporter in self.exporters:
            if exporter.name in self._handed_over:
                continue
            if flush:
                await exporter.flush()
            draining = asyncio.ensure_future(exporter.drain(None))
            while not draining.done() and exporter.name not in self._handed_over:
                # a later reload may hand this exporter's file over: stop waiting for it then
                await asyncio.wait([draining], timeout=_HAND_OVER_CHECK)
            draining.cancel()


async def _per_resource(work: Callable[..., _T], payload: bytes, *args: Any) -> _T:
    """`work(payload, *args)`, per-resource work: on the event loop for a request of few resources, else on
    the worker thread (the loop keeps serving others meanwhile)."""
    if len(payload) <= INLINE_BYTES and not _more_entries(payload, INLINE_RESOURCES):
        return work(payload, *args)
    return await inspection.off_loop(work, payload, *args)


def _more_entries(payload: bytes, limit: int) -> bool:
    """Whether `payload` holds more than `limit` top-level fields (resource entries), looking at no more."""
    return sum(1 for _ in itertools.islice(wire.fields(payload), limit + 1)) > limit


async def _settle(exporter: ExporterLane) -> None:
    """Flush `exporter` until nothing is on its way into its queue: no batch being handed over, no request
    being split, nothing buffered. A batch a request is handing over holds earlier requests too, already
    answered; it must be in the queue before the queue closes. Requests still being taken after a reload
    (see `Intake.quiesce`) may be doing that; without them the first flush is all it takes."""
    while True:
        await exporter.flush()
        if not any(batcher.pending_bytes for batcher in exporter.batchers.values()):
            return
        await asyncio.sleep(_SETTLE_CHECK)


def _too_late() -> errors.ReceiveError:
    """For a request still being taken after a reload stopped waiting for it (see `Intake.quiesce`), one
    of whose parts reached an exporter whose persistent queue was handed over: that lane has stopped (or is
    stopping), so the part may never be written; the client sends the request again (a duplicate at worst)."""
    return errors.refused(
        "the agent's config was reloaded while this request was being accepted; send it again",
        REFUSAL_RETRY_AFTER,
        "reload",
    )


def _with_unrouted(answer: Accepted, items: int, unrouted: int, message: str) -> Accepted:
    """`answer` with the items no route took added to its rejected ones (never more than `items`)."""
    rejected = min(items, answer.rejected + unrouted)
    return Accepted(rejected, "; ".join(m for m in (message, answer.message) if m))


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
