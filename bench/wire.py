"""Cheap wire-format helpers for the sink: decompress a body, count its spans without parsing it.

Counting walks only the three levels that lead to spans —
ExportTraceServiceRequest.resource_spans(1) → ResourceSpans.scope_spans(2) → ScopeSpans.spans(2) — and
skips every other field by its wire type, so the sink never builds a Python object per span. Concatenated
requests (how batches are built) count correctly because `resource_spans` is a repeated top-level field.
"""

from __future__ import annotations

from otlp_agent.otlp import compression, wire

LEN = 2
SPANS_KEY = (2 << 3) | LEN  # ScopeSpans.spans: field 2, length-delimited
_NO_LIMIT = 1 << 40

WireError = wire.MalformedPayload


def _fields(buf: bytes, start: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """(start, end) of every field number `wanted` in buf[start:end]."""
    return [(value, stop) for number, _, value, stop in wire.fields(buf, start, end) if number == wanted]


def _count_field(buf: bytes, start: int, end: int, wanted_key: int) -> int:
    """How many times the length-delimited key `wanted_key` occurs in buf[start:end] (the hot loop)."""
    count = 0
    pos = start
    while pos < end:
        key = buf[pos]
        if key == wanted_key:
            # Inline single-byte key and varint length: one span costs a few bytecodes, no allocation.
            pos += 1
            length = shift = 0
            while True:
                byte = buf[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            pos += length
            count += 1
        else:
            pos = _skip_field(buf, pos)
    if pos != end:
        raise WireError("field runs past the end of its message")
    return count


def _skip_field(buf: bytes, pos: int) -> int:
    return next(wire.fields(buf, pos, len(buf)))[3]


def count_spans(body: bytes) -> int:
    """Number of spans in a serialized ExportTraceServiceRequest (or a concatenation of several)."""
    total = 0
    try:
        for rs_start, rs_end in _fields(body, 0, len(body), 1):
            for ss_start, ss_end in _fields(body, rs_start, rs_end, 2):
                total += _count_field(body, ss_start, ss_end, SPANS_KEY)
    except IndexError as error:
        raise WireError("truncated message") from error
    return total


def decompress(body: bytes, encoding: str) -> bytes:
    """Undo a Content-Encoding / grpc-encoding: identity, gzip, deflate or zstd."""
    try:
        return compression.decode(body, encoding, _NO_LIMIT)
    except compression.BadEncoding as exc:
        raise WireError(str(exc)) from None
