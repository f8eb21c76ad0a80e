"""`loadBalancing`: one transport over every address the exporter's endpoint resolves to — a headless
Service's pods — so each span of a trace (or item of a resource) reaches the same pod, and long-lived
connections spread over all of them.

- Addresses come from `resolver.Resolver` (system DNS), resolved at the first export, then every
  `resolveInterval` in the background, and at once (at most once a second) after a failed send. Each
  address has its own transport, built like any exporter's (`make_one`: gRPC or HTTP, compression, TLS,
  headers, `connections`): one gRPC channel, or one HTTP session, per address, opened when first used and
  closed once an address that left has nothing in flight.
- Routing (`partition`): by trace id, by resource (a key of the resource or of some of its attributes), or
  round robin (whole batches in turn, nothing cut). Keys go to addresses by consistent hashing
  (`hash_ring`), so a change of the address set moves only the keys of the addresses that came or went.
  A batch is cut only when its items belong to several addresses; the parts are sent at once.
- Failure of one address (a retryable answer): it is held out of the ring for `retry.initialInterval`,
  doubling with each failure in a row up to `retry.maxInterval` (or the server's longer retry hint), and
  a resolution is asked for at once; what it failed to take is re-hashed over the other addresses and sent
  to them at once, in the same attempt (within its timeout). Only when no address is left (every one failed
  or is held back) does the attempt fail, retryably, and the exporter's retry policy (backoff, circuit
  breaker, `maxElapsed`) decides when what is left goes again. A part an address refuses for good (a
  non-retryable answer) is counted as failed (`rejected`) and dropped; the rest of the batch goes on.
- Partial delivery: after an attempt where some parts were delivered and others must go again, the
  batch's payload is replaced by what is left (its item count and size stay those of the whole batch: the
  lane accounts for the batch, the memory limiter for its bytes), so no retry, split or requeue (memory
  queue) sends a delivered part twice; a persistent queue's row keeps the whole batch, so after a restart
  a batch interrupted half-way may deliver its first parts twice (at least once, as always). The final
  answer accounts for every attempt: rejected and dropped items of all parts. If the retry policy gives a
  batch up (delivery fast), the lane counts all its items as failed, the parts delivered earlier
  included; the per-address counters are exact.

Per-address metrics: `otlp_agent_loadbalancer_items_total{exporter,endpoint,signal}`, failed requests,
the address count, resolutions and split batches. The per-address transports report no connection-pool or
compression-auto metrics of their own (their labels would collide).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import weakref
from collections.abc import Callable

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport import hash_ring, resolver
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.otlp import partition
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: Failed sends ask for a resolution at once, at most this often (seconds).
_RESOLVE_AFTER_FAILURE = 1.0
#: Distinct resource keys whose owner is remembered (the cache starts over when full).
_RESOURCE_CACHE = 4096


@dataclasses.dataclass
class _Address:
    transport: Transport
    in_flight: int = 0
    gone: bool = False  # left the resolved set: closed once nothing is in flight


@dataclasses.dataclass
class _Tally:
    """What earlier attempts of one batch already settled."""

    rejected: int = 0
    dropped: int = 0
    wire_bytes: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)
    items_left: int | None = None  # items of the payload left to deliver (None: the whole batch)
    last_failure: ExportResult | None = None  # why the last round left something


class LoadBalancingTransport:
    """A Transport over the resolved addresses of `exporter`'s endpoint(s)."""

    def __init__(
        self,
        exporter: spec.Exporter,
        make_one: Callable[[spec.Exporter], Transport],
        metrics: AgentMetrics | None = None,
        lookup: resolver.Lookup = resolver.system_lookup,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert exporter.load_balancing is not None
        self.name = exporter.name
        self.settings = exporter.load_balancing
        self._exporter = exporter
        self._make_one = make_one
        self._metrics = metrics
        self._clock = clock
        self._resolver = resolver.Resolver(list(exporter.endpoints or [exporter.endpoint or ""]), lookup)
        self._hold = (exporter.retry.initial_interval, exporter.retry.max_interval)
        self._addresses: dict[str, _Address] = {}
        self._held: dict[str, float] = {}  # address -> monotonic time it rejoins the ring
        self._strikes: dict[str, int] = {}  # address -> failures in a row
        self._ring = hash_ring.Ring(())
        self._turn = 0  # round robin
        self._resource_owners: dict[bytes, str] = {}
        self._tallies: dict[int, _Tally] = {}
        self._resolved: asyncio.Task[None] | None = None  # the first resolution
        self._refresher: asyncio.Task[None] | None = None
        self._resolve_now = asyncio.Event()
        self._last_forced = -_RESOLVE_AFTER_FAILURE
        self._closing: set[asyncio.Task[None]] = set()

    # -- addresses --------------------------------------------------------------------------------------

    async def _ready(self) -> None:
        """Resolve once before the first export; then keep resolving in the background."""
        if self._resolved is None:
            self._resolved = asyncio.get_running_loop().create_task(self._resolve())
        await asyncio.shield(self._resolved)
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(), name=f"resolve-{self.name}"
            )

    async def _refresh(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that arrives as the event
            # is set, and close() would then wait for this loop for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.resolve_interval):
                    await self._resolve_now.wait()
            self._resolve_now.clear()
            try:
                await self._resolve()
            except Exception as exc:  # never end the refreshing
                logs.event(f"resolve_failed_{self.name}", f"exporter {self.name}: resolving failed: {exc!r}")

    async def _resolve(self) -> None:
        changed, why = await self._resolver.resolve()
        outcome = "failed" if why else ("changed" if changed else "unchanged")
        if self._metrics is not None:
            self._metrics.lb_resolutions.labels(self.name, outcome).inc()
        if why:
            logs.event(
                f"resolve_failed_{self.name}",
                f"exporter {self.name}: cannot resolve its endpoint ({why}); keeping "
                f"{len(self._resolver.addresses)} known addresses",
                exporter=self.name,
            )
        if changed:
            self._update(self._resolver.addresses)

    def _update(self, addresses: tuple[str, ...]) -> None:
        for address in set(self._addresses) - set(addresses):
            self._addresses[address].gone = True
            self._held.pop(address, None)
            self._strikes.pop(address, None)
            self._close_if_idle(address)
            if self._metrics is not None:
                self._metrics.forget_endpoint(self.name, address)
        for address in addresses:
            if address not in self._addresses or self._addresses[address].gone:
                settings = {"endpoint": address, "endpoints": None, "load_balancing": None}
                self._addresses[address] = _Address(
                    self._make_one(self._exporter.model_copy(update=settings))
                )
        self._rebuild()
        logs.info(
            f"exporter {self.name} balances over {len(addresses)} addresses",
            exporter=self.name,
            addresses=list(addresses),
        )

    def _rebuild(self) -> None:
        now = self._clock()
        for address in [a for a, until in self._held.items() if until <= now]:
            del self._held[address]
        live = [a for a, state in self._addresses.items() if not state.gone and a not in self._held]
        if set(live) != set(self._ring.addresses):
            self._ring = hash_ring.Ring(live)
            self._resource_owners.clear()
        if self._metrics is not None:
            self._metrics.lb_endpoints.labels(self.name).set(len(self._ring.addresses))

    def _hold_back(self, address: str, retry_after: float | None) -> None:
        """Keep a failed address out of the ring: `retry.initialInterval`, doubling with each failure in a
        row, at most `retry.maxInterval` (a server's longer retry hint wins)."""
        low, high = self._hold
        strikes = self._strikes[address] = self._strikes.get(address, 0) + 1
        pause = min(high, max(low * 2 ** (strikes - 1), retry_after or 0.0))
        self._held[address] = self._clock() + pause
        now = self._clock()
        if now - self._last_forced >= _RESOLVE_AFTER_FAILURE:
            self._last_forced = now
            self._resolve_now.set()

    def _close_if_idle(self, address: str) -> None:
        state = self._addresses.get(address)
        if state is None or not state.gone or state.in_flight:
            return
        del self._addresses[address]
        task = asyncio.get_running_loop().create_task(state.transport.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- exporting --------------------------------------------------------------------------------------

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        await self._ready()
        deadline = self._clock() + timeout
        failed_here: set[str] = set()
        while True:
            ring = self._live_ring(failed_here)
            if not ring:
                return self._nowhere(batch, failed_here)
            parts = self._parts(batch, ring)
            if len(parts) > 1 and self._metrics is not None:
                self._metrics.lb_split_batches.labels(self.name).inc()
            left = max(0.001, deadline - self._clock())
            sends = (self._send(address, batch.signal, part, left) for address, part in parts.items())
            result = self._settle(batch, parts, await asyncio.gather(*sends), failed_here)
            if result is not None:
                return result
            # What an address failed to take goes at once to the others (re-hashed), while time is left.
            last = self._tally(batch).last_failure
            if last is not None and self._clock() >= deadline:
                return last

    def _live_ring(self, failed_here: set[str]) -> hash_ring.Ring:
        """The ring without the addresses held back, nor those that failed during this export."""
        if self._held:
            self._rebuild()
        if not failed_here:
            return self._ring
        return hash_ring.Ring(a for a in self._ring.addresses if a not in failed_here)

    def _nowhere(self, batch: Batch, failed_here: set[str]) -> ExportResult:
        """No address is left to try: a retryable failure (the retry policy sends what is left again)."""
        tally = self._tallies.get(id(batch))
        if failed_here and tally is not None and tally.last_failure is not None:
            return tally.last_failure
        hosts = ", ".join(t.host for t in self._resolver.targets)
        message = (
            "every address is held back after failing" if self._held else f"{hosts} resolved to no address"
        )
        return ExportResult.failure(message, retryable=True)

    def _parts(self, batch: Batch, ring: hash_ring.Ring) -> dict[str, tuple[bytes, int]]:
        payload, items = batch.payload(), self._items_left(batch)
        key = self.settings.routing_key
        if key == spec.RoutingKey.round_robin:
            self._turn = (self._turn + 1) % len(ring.addresses)
            return {ring.addresses[self._turn]: (payload, items)}

        def by_resource(resource: bytes) -> int:
            return ring.addresses.index(self._resource_owner(resource, ring))

        if key == spec.RoutingKey.trace_id:
            found = partition.by_trace(batch.signal, payload, items, ring.owner, by_resource)
        else:
            found = partition.by_resource(batch.signal, payload, items, by_resource)
        return {ring.addresses[index]: part for index, part in found.items()}

    def _resource_owner(self, resource: bytes, ring: hash_ring.Ring) -> str:
        # The cache holds owners on the resolved ring; a re-hash round's ring
        # (without the addresses that just failed) is asked directly.
        if ring is not self._ring:
            key = partition.resource_key(resource, tuple(self.settings.resource_attributes))
            return ring.addresses[ring.owner(key)]
        owner = self._resource_owners.get(resource)
        if owner is None:
            key = partition.resource_key(resource, tuple(self.settings.resource_attributes))
            owner = ring.addresses[ring.owner(key)]
            if len(self._resource_owners) >= _RESOURCE_CACHE:
                self._resource_owners.clear()
            self._resource_owners[resource] = owner
        return owner

    async def _send(
        self, address: str, signal: spec.Signal, part: tuple[bytes, int], timeout: float
    ) -> ExportResult:
        state = self._addresses[address]
        state.in_flight += 1
        try:
            data, items = part
            return await state.transport.export(Batch(signal, [data], items, len(data)), timeout)
        finally:
            state.in_flight -= 1
            self._close_if_idle(address)

    def _settle(
        self,
        batch: Batch,
        parts: dict[str, tuple[bytes, int]],
        results: list[ExportResult],
        failed_here: set[str],
    ) -> ExportResult | None:
        """Account for one round: the final answer, or None when what is left should go to the other
        addresses now (the batch then holds only that)."""
        tally = self._tally(batch)
        left: list[bytes] = []
        left_items = 0
        failures: list[ExportResult] = []
        for (address, (data, items)), result in zip(parts.items(), results, strict=True):
            if result.ok:
                self._count(address, batch, items - result.rejected)
                tally.rejected += result.rejected
                tally.wire_bytes += result.wire_bytes
                if result.message:
                    tally.messages.append(f"{address}: {result.message}")
                continue
            self._failed(address, result)
            if result.retryable:
                failed_here.add(address)
            if result.retryable or result.too_large:
                left.append(data)
                left_items += items
                failures.append(dataclasses.replace(result, message=f"{address}: {result.message}"))
            else:
                self._refused(batch, items, f"{address}: {result.message}", tally)
        if not left:
            self._tallies.pop(id(batch), None)
            return ExportResult(
                ok=True,
                rejected=tally.rejected,
                dropped=tally.dropped,
                wire_bytes=tally.wire_bytes,
                message="; ".join(tally.messages[:3]),
            )
        if len(left) < len(parts) or tally.dropped:
            batch.chunks = [b"".join(left)]  # what is left to deliver (see the module docstring)
            tally.items_left = left_items
        tally.last_failure = _worst(failures)
        return tally.last_failure if tally.last_failure.too_large else None

    def _tally(self, batch: Batch) -> _Tally:
        found = self._tallies.get(id(batch))
        if found is None:
            found = self._tallies[id(batch)] = _Tally()
            weakref.finalize(batch, self._tallies.pop, id(batch), None)
        return found

    def _items_left(self, batch: Batch) -> int:
        """Items in the batch's payload now: all of them, until a partial delivery cut it."""
        tally = self._tallies.get(id(batch))
        return batch.items if tally is None or tally.items_left is None else tally.items_left

    def _count(self, address: str, batch: Batch, items: int) -> None:
        self._strikes.pop(address, None)
        if self._metrics is not None:
            self._metrics.lb_items.labels(self.name, address, batch.signal.value).inc(items)

    def _failed(self, address: str, result: ExportResult) -> None:
        if self._metrics is not None:
            self._metrics.lb_failures.labels(self.name, address, str(result.retryable).lower()).inc()
        if result.retryable:
            self._hold_back(address, result.retry_after)
            logs.event(
                f"lb_address_failed_{self.name}",
                f"exporter {self.name}: {address} failed ({result.message}); its share goes to the other "
                "addresses for a while",
                exporter=self.name,
            )

    def _refused(self, batch: Batch, items: int, message: str, tally: _Tally) -> None:
        """A part refused for good: counted here (the lane hears it as `dropped`), the rest goes on."""
        tally.dropped += items
        tally.messages.append(message)
        if self._metrics is not None:
            self._metrics.failed_items.labels(self.name, batch.signal.value, "rejected").inc(items)
        logs.event(
            f"export_failed_{self.name}",
            f"exporter {self.name}: {items} items refused: {message}",
            exporter=self.name,
        )

    async def close(self) -> None:
        for task in (self._refresher, self._resolved):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for state in self._addresses.values():
            await state.transport.close()
        self._addresses.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)


def _worst(failures: list[ExportResult]) -> ExportResult:
    """The answer for an attempt whose parts failed in several ways: too large wins (the splitting sender
    cuts what is left), then the longest retry hint."""
    too_large = [f for f in failures if f.too_large]
    if too_large:
        return too_large[0]
    hints = [f.retry_after for f in failures if f.retry_after is not None]
    message = "; ".join(f.message for f in failures[:3])
    return ExportResult.failure(message, retryable=True, retry_after=max(hints) if hints else None)
