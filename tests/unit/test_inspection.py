"""Validating and counting requests with bounded memory: large requests are parsed piece by piece with the
same verdict and counts as one parse, floods of entries are refused early, and per-item work runs off the
event loop."""

from __future__ import annotations

import asyncio
import resource
import threading

import pytest
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import inspection, wire

from tests.support import placed_requests as samples

PIECE = inspection.PIECE_BYTES
ALL = list(Signal)


def _large(signal: Signal, shape: samples.Shape, padding: int) -> bytes:
    return samples.serialize(samples.request(signal, shape, padding))


@pytest.mark.parametrize("signal", ALL)
@pytest.mark.parametrize(
    ("shape", "padding"),
    [
        ([[3000]], 40),  # one resource, one scope, many small items
        ([[2], [5, 7]] * 400, 10),  # many resources and scopes
        ([[3], [1]], PIECE + 500),  # items larger than a piece (descends into them)
    ],
)
def test_large_requests_count_as_one_parse_does(signal: Signal, shape: samples.Shape, padding: int) -> None:
    data = _large(signal, shape, padding)
    assert len(data) > PIECE
    expected = wire.validate_and_count(signal, data)
    assert inspection.validate_and_count(signal, data, 10**7) == expected


@pytest.mark.parametrize("signal", ALL)
def test_an_invalid_string_deep_in_a_large_request_is_malformed(signal: Signal) -> None:
    data = _large(signal, [[2000]], 40)
    bad = data.replace(b"i0.0.1500", b"i0.\xff\xfe1500")
    with pytest.raises(wire.MalformedPayload):
        inspection.validate_and_count(signal, bad, 10**7)


def _span_nested(depth: int, leaf_size: int) -> bytes:
    """A request whose one span has an attribute nested `depth` arrays deep, with a large leaf string."""
    value = wire.length_delimited(1, b"x" * leaf_size)  # AnyValue.string_value
    for _ in range(depth):  # AnyValue.array_value -> ArrayValue.values
        value = wire.length_delimited(5, wire.length_delimited(1, value))
    attribute = wire.length_delimited(1, b"k") + wire.length_delimited(2, value)  # KeyValue
    span = wire.length_delimited(5, b"deep") + wire.length_delimited(9, attribute)
    return wire.length_delimited(1, wire.length_delimited(2, wire.length_delimited(2, span)))


def test_nesting_depth_counts_as_in_one_parse() -> None:
    """Pieces are wrapped in their ancestors, so a request nested too deep for a parser is refused even
    when each piece alone would be shallow enough."""
    for depth in (40, 50):  # 6 + 2 * depth messages deep: within upb's limit of 100, then beyond it
        data = _span_nested(depth, 2 * PIECE)
        try:
            expected: int | None = wire.validate_and_count(Signal.traces, data)
        except wire.MalformedPayload:
            expected = None
        assert (expected is None) == (depth == 50)
        if expected is None:
            with pytest.raises(wire.MalformedPayload):
                inspection.validate_and_count(Signal.traces, data, 100)
        else:
            assert inspection.validate_and_count(Signal.traces, data, 100) == expected == 1


def _flood_of_empty_spans(count: int) -> bytes:
    return wire.length_delimited(1, wire.length_delimited(2, b"\x12\x00" * count))


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize(
    ("flood", "what"),
    [
        (_flood_of_empty_spans(2_000_000), "empty spans"),
        (b"\x0a\x00" * 2_000_000, "empty resource entries"),
    ],
)
def test_a_flood_of_entries_is_refused_after_the_limit_without_a_parse_of_the_whole(
    flood: bytes, what: str
) -> None:
    before = _peak_rss_kib()
    with pytest.raises(inspection.TooManyEntries, match="more than 100000 entries"):
        inspection.validate_and_count(Signal.traces, flood, 100_000)
    # One parse of the whole would cost ~170 bytes per entry (~340 MB here); pieces cost a few MiB.
    assert _peak_rss_kib() - before < 64 * 1024, what


def test_small_requests_over_the_entry_limit_are_refused_too() -> None:
    data = _large(Signal.logs, [[5, 5]], 0)
    assert inspection.validate_and_count(Signal.logs, data, 13) == 10  # 1 resource + 2 scopes + 10
    with pytest.raises(inspection.TooManyEntries):
        inspection.validate_and_count(Signal.logs, data, 12)


async def test_per_item_work_runs_on_one_worker_thread_not_the_loop() -> None:
    threads: set[str] = set()

    def work() -> int:
        threads.add(threading.current_thread().name)
        return inspection.validate_and_count(Signal.traces, _large(Signal.traces, [[500]], 200), 10**6)

    counts = await asyncio.gather(*(inspection.off_loop(work) for _ in range(3)))
    assert counts == [500, 500, 500]
    assert len(threads) == 1 and threading.main_thread().name not in threads


def test_a_small_request_of_thousands_of_resources_is_counted_off_the_loop_instead() -> None:
    entry = wire.length_delimited(1, wire.length_delimited(2, b"\x12\x00"))  # one scope, one empty span
    many = entry * 2000
    assert len(many) <= PIECE
    assert inspection.validate_inline(Signal.traces, many, 10**6) is None  # more than ~1 ms of Python
    assert inspection.validate_and_count(Signal.traces, many, 10**6) == 2000
    few = _large(Signal.traces, [[50]] * 4, 0)
    assert len(few) <= PIECE
    assert inspection.validate_inline(Signal.traces, few, 10**6) == 200
