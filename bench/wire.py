"""Cheap wire-format helpers for the sink: decompress a body, count its spans without parsing it.

Counting walks only the three levels that lead to spans —
ExportTraceServiceRequest.resource_spans(1) → ResourceSpans.scope_spans(2) → ScopeSpans.spans(2) — and
skips every other field by its wire type, so the sink never builds a Python object per span. Concatenated
requests (how batches are built) count correctly because `resource_spans` is a repeated top-level field.
"""

from __future__ import annotations

import zlib

import zstandard

VARINT, I64, LEN, I32 = 0, 1, 2, 5
SPANS_KEY = (2 << 3) | LEN  # ScopeSpans.spans: field 2, length-delimited


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _fields(buf: bytes | memoryview, start: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """(start, end) of every length-delimited field number `wanted` in buf[start:end]."""
    found = []
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            _, pos = read_varint(buf, pos)
        elif wire_type == I64:
            pos += 8
        elif wire_type == I32:
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos)
            if number == wanted:
                found.append((pos, pos + length))
            pos += length
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if pos != end:
        raise WireError("field runs past the end of its message")
    return found


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
    key, pos = read_varint(buf, pos)
    wire_type = key & 7
    if wire_type == VARINT:
        return read_varint(buf, pos)[1]
    if wire_type == I64:
        return pos + 8
    if wire_type == I32:
        return pos + 4
    if wire_type == LEN:
        length, pos = read_varint(buf, pos)
        return pos + length
    raise WireError(f"unsupported wire type {wire_type}")


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
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    if encoding == "gzip":
        return zlib.decompress(body, zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        # A decompressobj copes with frames that do not record their content size.
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise WireError(f"unknown encoding {encoding!r}")
