"""Validating and counting a request with bounded memory, and per-item work kept off the event loop.

A upb parse allocates its arena before anyone can look at the result: ~170 bytes per empty 2-byte span,
so 16 MiB of empty spans cost ~1.4 GB and ~1.8 s of C holding the GIL (measured). Hence:
- a request of at most `PIECE_BYTES` is parsed whole, on the event loop: at most ~5.5 MiB of arena and
  ~6 ms, the fast path (an SDK's request is tens of KB), unless counting it would loop over more than
  `INLINE_STEPS` resources, scopes or metrics (~1 ms of Python): then it goes the way of a large one;
- a larger one is cut into pieces of at most `PIECE_BYTES` at field boundaries (`wire.fields`, descending
  into a field of message type only when it is itself larger than a piece), and each piece, wrapped in
  empty copies of its ancestors so nesting depth counts exactly as in one parse, is parsed and dropped
  before the next. Protobuf's merge semantics make the pieces valid exactly when the whole is. This runs
  on one worker thread (`off_loop`) shared by the process, so at most one piece is being parsed there at
  any time and the event loop keeps serving other clients (Python threads switch every 5 ms);
- a request is refused once it holds more than `max_entries` entries — resources, scopes, metrics and
  items (spans, data points, log records) — counted piece by piece, so a flood stops after that many.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.otlp.signals import SIGNALS

#: Largest request (or piece of one) parsed whole: bounds one parse's arena to ~85x this.
PIECE_BYTES = 64 * 1024
#: Most resource/scope/metric steps of Python a request validated on the event loop may take (~1 ms).
INLINE_STEPS = 1024

_T = TypeVar("_T")
_worker: concurrent.futures.ThreadPoolExecutor | None = None


class TooManyEntries(ValueError):
    """The request holds more entries than the receiver accepts in one request."""


async def off_loop(function: Callable[..., _T], *args: Any) -> _T:
    """Run per-item work on the process's one worker thread, so it never holds the event loop."""
    global _worker
    if _worker is None:
        _worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="otlp-per-item")
    return await asyncio.get_running_loop().run_in_executor(_worker, function, *args)


def after_worker(callback: Callable[[], None]) -> None:
    """Call `callback` on the event loop once the worker thread has finished every job queued so far (it
    runs them in order). For a request cancelled while a job of its own, running or queued, may still hold
    its bytes: its memory is given back then, not at the cancel."""
    passed = asyncio.get_running_loop().create_task(off_loop(_nothing))
    _passing.add(passed)
    passed.add_done_callback(_passing.discard)
    passed.add_done_callback(lambda _: callback())


_passing: set[asyncio.Task[None]] = set()  # `after_worker`'s waits (the loop keeps only weak references)


def _nothing() -> None:
    """A job for the worker thread whose end says the jobs queued before it have ended."""


def census(signal: Signal, message: Any, budget: int | None = None) -> tuple[int, int] | None:
    """(entries, items) of a parsed request, looping over resources, scopes (and metrics) only; None when
    that loop would take more than `budget` steps (each ~1 µs of Python)."""
    if budget is None:
        budget = 1 << 62
    entries = items = 0
    if signal == Signal.metrics:
        for rm in message.resource_metrics:
            entries += 1
            for scope in rm.scope_metrics:
                metrics = scope.metrics
                entries += 1 + len(metrics)
                if entries > budget:
                    return None
                items += sum(wire.metric_points(metric) for metric in metrics)
            if entries > budget:
                return None
        return entries + items, items
    resources = message.resource_spans if signal == Signal.traces else message.resource_logs
    for entry in resources:
        scopes = entry.scope_spans if signal == Signal.traces else entry.scope_logs
        entries += 1 + len(scopes)
        if entries > budget:
            return None
        for scope in scopes:
            items += len(scope.spans if signal == Signal.traces else scope.log_records)
    return entries + items, items


def validate_inline(signal: Signal, data: bytes, max_entries: int) -> int | None:
    """`validate_and_count` for a request of at most PIECE_BYTES, on the event loop: one parse (a few ms
    at worst) and a census of at most INLINE_STEPS steps; None when the census would take longer (a
    request of thousands of resources or scopes): validate it with `off_loop` instead."""
    counted = census(signal, wire.parse(signal, data), INLINE_STEPS)
    if counted is None:
        return None
    _check(counted[0], max_entries)
    return counted[1]


def validate_and_count(signal: Signal, data: bytes, max_entries: int) -> int:
    """Validate `data` fully (as one upb parse would, UTF-8 and nesting depth included) and return its
    item count; raises wire.MalformedPayload or TooManyEntries. Call through `off_loop` when `data` is
    larger than PIECE_BYTES."""
    if len(data) <= PIECE_BYTES:
        entries, items = _census(signal, wire.parse(signal, data))
        _check(entries, max_entries)
        return items
    tally = _Tally(signal, max_entries)
    tally.walk(SIGNALS[signal].request_type.DESCRIPTOR, memoryview(data), ())
    return tally.items


def _census(signal: Signal, message: Any) -> tuple[int, int]:
    counted = census(signal, message)
    assert counted is not None
    return counted


def _check(entries: int, max_entries: int) -> None:
    if entries > max_entries:
        raise TooManyEntries(
            f"more than {max_entries} entries (resources, scopes, metrics and items) in one request"
        )


class _Tally:
    """Entries and items of a large request, parsed piece by piece."""

    def __init__(self, signal: Signal, max_entries: int) -> None:
        self.signal = signal
        self.max_entries = max_entries
        self.entries = self.items = 0

    def walk(self, descriptor: Descriptor, data: memoryview, chain: tuple[int, ...]) -> None:
        """Parse `data`, the fields of a `descriptor` message found at `chain` (field numbers from the
        request down), in groups of consecutive fields of at most PIECE_BYTES."""
        first = last = 0  # the group of fields not parsed yet: data[first:last]
        for number, start, value_start, end in wire.fields(data):
            if end - start > PIECE_BYTES:
                self._piece(chain, data[first:last])
                field = descriptor.fields_by_number.get(number)
                if field is not None and field.type == FieldDescriptor.TYPE_MESSAGE:
                    self._enter(chain, number)
                    self.walk(field.message_type, data[value_start:end], (*chain, number))
                else:  # a long string or an unknown field: parsing it alone costs about its size
                    self._piece(chain, data[start:end])
                first = last = end
                continue
            if end - first > PIECE_BYTES:
                self._piece(chain, data[first:last])
                first = start
            last = end
        self._piece(chain, data[first:last])

    def _piece(self, chain: tuple[int, ...], piece: memoryview) -> None:
        if not piece:
            return
        wrapped = bytes(piece)
        for number in reversed(chain):
            wrapped = wire.length_delimited(number, wrapped)
        entries, items = _census(self.signal, wire.parse(self.signal, wrapped))
        chain_entries, chain_items = _chain_census(self.signal, chain)
        self._add(entries - chain_entries, items - chain_items)

    def _enter(self, chain: tuple[int, ...], number: int) -> None:
        """Count the entry being descended into once (its pieces each carry an empty copy of it)."""
        outer_entries, outer_items = _chain_census(self.signal, chain)
        inner_entries, inner_items = _chain_census(self.signal, (*chain, number))
        self._add(inner_entries - outer_entries, inner_items - outer_items)

    def _add(self, entries: int, items: int) -> None:
        self.entries += entries
        self.items += items
        _check(self.entries, self.max_entries)


@functools.cache
def _chain_census(signal: Signal, chain: tuple[int, ...]) -> tuple[int, int]:
    """(entries, items) that empty ancestors at `chain` add to a piece wrapped in them."""
    wrapped = b""
    for number in reversed(chain):
        wrapped = wire.length_delimited(number, wrapped)
    return _census(signal, wire.parse(signal, wrapped))
