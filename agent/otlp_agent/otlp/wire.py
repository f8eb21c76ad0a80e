"""Protobuf wire-format helpers for OTLP requests kept as bytes.

The fast path never builds per-item Python objects: a request is validated and counted with one upb parse
(C speed; loops only over resources and scopes; `inspection` bounds that for requests from clients), and
batches are built by concatenating serialized requests — in protobuf, the concatenation of two messages is
their merge. Splitting an oversized request slices the original bytes at resource, scope and item
boundaries with a small varint walker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError

from otlp_agent.api.spec import Signal
from otlp_agent.otlp.signals import SIGNALS

_LENGTH_DELIMITED = 2


class MalformedPayload(ValueError):
    """The bytes are not a valid Export*ServiceRequest of the expected signal."""


def parse(signal: Signal, data: bytes) -> Any:
    """The parsed request (upb); raises MalformedPayload."""
    message = SIGNALS[signal].request_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MalformedPayload(f"invalid {signal.value} protobuf: {exc}") from None
    return message


def count_parsed(signal: Signal, message: Any) -> int:
    """Items in a parsed request, looping over resources and scopes only."""
    if signal == Signal.traces:
        return sum(len(scope.spans) for rs in message.resource_spans for scope in rs.scope_spans)
    if signal == Signal.logs:
        return sum(len(scope.log_records) for rl in message.resource_logs for scope in rl.scope_logs)
    return sum(
        metric_points(metric)
        for rm in message.resource_metrics
        for scope in rm.scope_metrics
        for metric in scope.metrics
    )


def metric_points(metric: Any) -> int:
    """Data points of a parsed Metric."""
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def validate_and_count(signal: Signal, data: bytes) -> int:
    """Validate `data` fully (upb parse, UTF-8 included) and return its item count. For requests from
    clients, `inspection.validate_and_count` bounds the memory and time this takes."""
    return count_parsed(signal, parse(signal, data))


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise MalformedPayload("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise MalformedPayload("varint too long")


def fields(
    data: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """(field number, field start, value start, field end) of each top-level field in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        field_start = pos
        key, pos = read_varint(data, pos)
        wire_type = key & 7
        if wire_type == 0:
            _, pos = read_varint(data, pos)
            value_start = pos
        elif wire_type == _LENGTH_DELIMITED:
            length, value_start = read_varint(data, pos)
            pos = value_start + length
        elif wire_type == 1:
            value_start, pos = pos, pos + 8
        elif wire_type == 5:
            value_start, pos = pos, pos + 4
        else:
            raise MalformedPayload(f"unsupported wire type {wire_type}")
        if pos > end:
            raise MalformedPayload("field runs past the end of its message")
        yield key >> 3, field_start, value_start, pos


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def varint(value: int) -> bytes:
    """`value` (>= 0; negative int32/int64 values are passed as their 64-bit two's complement) as a protobuf
    varint: lengths of one and two bytes, the common ones, without a loop."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _wrap(field_number: int, payload: bytes) -> bytes:
    return varint(field_number << 3 | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def split(signal: Signal, data: bytes, max_items: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """Split a valid request into requests of at most max_items items and about max_bytes bytes.

    Cuts happen between resources, then between scopes, then between items (spans, log records, metrics);
    the enclosing resource and scope are repeated in each part. A single item larger than the limits is
    kept whole. Returns (request bytes, item count) pairs whose concatenation holds every item once.
    """
    # Memoryviews down the tree: slicing bytes would copy every resource and scope being split.
    return list(_group(_pieces(signal, memoryview(data), 0, max_items, max_bytes), max_items, max_bytes))


_Piece = bytes | memoryview


def _group(
    pieces: Iterator[tuple[_Piece, int]], max_items: int, max_bytes: int
) -> Iterator[tuple[bytes, int]]:
    """Greedily concatenate consecutive pieces while they fit the limits (lazily: one group at a time)."""
    current: list[_Piece] = []
    items = size = 0
    for piece, piece_items in pieces:
        if current and (items + piece_items > max_items or size + len(piece) > max_bytes):
            yield b"".join(current), items
            current, items, size = [], 0, 0
        current.append(piece)
        items += piece_items
        size += len(piece)
    if current:
        yield b"".join(current), items


# Depths of the request tree: 0 request -> 1 resource (field 1) -> 2 scope (field 2) -> items (field 2).
_SCOPE_DEPTH = 2


def _pieces(
    signal: Signal, message: memoryview, depth: int, max_items: int, max_bytes: int
) -> Iterator[tuple[_Piece, int]]:
    """The repeated child fields of `message` (tag included) with their item counts; a child too big for
    the limits is itself split, each part wrapped in a copy of the child's other fields."""
    child_number = 1 if depth == 0 else 2
    for number, start, value_start, end in fields(message):
        if number != child_number:
            continue
        child = message[value_start:end]
        if depth == _SCOPE_DEPTH:
            yield message[start:end], (_metric_points_wire(child) if signal == Signal.metrics else 1)
            continue
        items = _count_subtree(signal, child, depth + 1)
        if items <= max_items and end - start <= max_bytes:
            yield message[start:end], items
            continue
        header = b"".join(child[s:e] for n, s, _, e in fields(child) if n != 2)
        for part, part_items in _group(
            _pieces(signal, child, depth + 1, max_items, max_bytes), max_items, max_bytes
        ):
            tag = varint(child_number << 3 | _LENGTH_DELIMITED)
            yield b"".join((tag, varint(len(header) + len(part)), header, part)), part_items


def _count_subtree(signal: Signal, message: memoryview, depth: int) -> int:
    """Items below a resource (depth 1) or scope (depth 2) message."""
    children = [message[v:e] for n, _, v, e in fields(message) if n == 2]
    if depth < _SCOPE_DEPTH:
        return sum(_count_subtree(signal, child, depth + 1) for child in children)
    if signal == Signal.metrics:
        return sum(_metric_points_wire(metric) for metric in children)
    return len(children)


_METRIC_DATA_FIELDS = {5, 7, 9, 10, 11}  # gauge, sum, histogram, exponential_histogram, summary


def _metric_points_wire(metric: memoryview) -> int:
    for number, _, value_start, end in fields(metric):
        if number in _METRIC_DATA_FIELDS:
            return sum(1 for n, *_ in fields(metric, value_start, end) if n == 1)
    return 0


# -- Resource-level helpers for routing and enrichment: they read or rewrite a request's top-level resource
# entries (ResourceSpans / ResourceMetrics / ResourceLogs, field 1 of the request) and never descend into
# scopes.

#: Field numbers shared by every signal: request.resource_* = 1; resource entry .resource = 1,
#: Resource.attributes = 1; KeyValue.key = 1, .value = 2; AnyValue.string_value = 1.
RESOURCE_ENTRY = RESOURCE = ATTRIBUTES = KEY = STRING_VALUE = 1
VALUE = 2


def resource_entries(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(entry start, value start, entry end) of each top-level resource entry of a request."""
    for number, start, value_start, end in fields(data):
        if number == RESOURCE_ENTRY:
            yield start, value_start, end


def resource_bytes(data: bytes, start: int, end: int) -> bytes:
    """The Resource message of the resource entry whose value is data[start:end] (b"" when absent).

    A Resource present more than once is merged by protobuf parsers; joining the occurrences is that merge.
    """
    return b"".join(data[v:e] for n, _, v, e in fields(data, start, end) if n == RESOURCE)


def attribute_keys(resource: bytes) -> set[str]:
    """Keys of a serialized Resource's attributes (reads keys only, never values)."""
    keys: set[str] = set()
    for number, _, value_start, end in fields(resource):
        if number != ATTRIBUTES:
            continue
        for key_number, _, key_start, key_end in fields(resource, value_start, end):
            if key_number == KEY:
                keys.add(resource[key_start:key_end].decode("utf-8", "replace"))
    return keys


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """`payload` as a length-delimited field (tag, length, bytes)."""
    return _wrap(field_number, payload)


def string_attribute(key: str, value: str) -> bytes:
    """A Resource.attributes field holding KeyValue(key, AnyValue(string_value=value))."""
    any_value = _wrap(STRING_VALUE, value.encode())
    return _wrap(ATTRIBUTES, _wrap(KEY, key.encode()) + _wrap(VALUE, any_value))
