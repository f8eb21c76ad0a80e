"""Attributes on the wire: a KeyValue kept as its serialized bytes, read and rebuilt without protobuf objects.

A KeyValue as every SDK writes it is `0x0A len key 0x12 len AnyValue`; `split` reads that form with a few
byte operations and hands anything else (fields reordered or repeated, which protobuf allows and merges) to
upb, so the answer is always what a parser would say. Values stay serialized AnyValue messages; `text` gives
the form conditions compare (strings as they are, booleans true/false, numbers in decimal) and
`hash_input` the documented bytes the hash action digests.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1 import common_pb2

from otlp_agent.otlp import wire

_KEY_TAG, _VALUE_TAG = 0x0A, 0x12
# AnyValue fields: string 1, bool 2, int 3, double 4 (fixed64), array 5, kvlist 6, bytes 7.
_STRING, _BOOL, _INT, _DOUBLE, _BYTES = 0x0A, 0x10, 0x18, 0x21, 0x3A


# Module globals: looked up once per attribute without an attribute lookup on `wire`.
_varint = wire.varint
_read_varint = wire.read_varint


def canonical(blob: bytes) -> tuple[bytes, bytes] | None:
    """(key, serialized AnyValue) of a KeyValue written as SDKs write it (`0A len key`, then `12 len value`
    or nothing, and nothing else); None for any other form."""
    if len(blob) > 2 and blob[0] == _KEY_TAG and blob[1] < 0x80:
        value_tag = 2 + blob[1]
        if value_tag == len(blob):
            return blob[2:value_tag], b""
        if value_tag < len(blob) and blob[value_tag] == _VALUE_TAG:
            try:
                length, start = _read_varint(blob, value_tag + 1)
            except wire.MalformedPayload:  # truncated: upb says what it is
                return None
            if start + length == len(blob):
                return blob[2:value_tag], blob[start:]
    return None


def split(blob: bytes) -> tuple[bytes, bytes]:
    """(key as UTF-8 bytes, serialized AnyValue) of a serialized KeyValue."""
    found = canonical(blob)
    if found is not None:
        return found
    try:
        parsed = common_pb2.KeyValue.FromString(blob)
    except DecodeError:  # receivers validated the request; never crash on it anyway
        return b"", b""
    return parsed.key.encode(), parsed.value.SerializeToString()


def key_of(blob: bytes) -> bytes:
    """The key of a serialized KeyValue: a slice of it in the common form, else what `split` says."""
    size = len(blob)
    if size > 2 and blob[0] == _KEY_TAG and blob[1] < 0x80:
        end = 2 + blob[1]
        if end == size:
            return blob[2:end]
        if (
            end + 1 < size
            and blob[end] == _VALUE_TAG
            and blob[end + 1] < 0x80
            and end + 2 + blob[end + 1] == size
        ):
            return blob[2:end]
    return split(blob)[0]


def build(key: bytes, value: bytes) -> bytes:
    """A serialized KeyValue."""
    return b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(value)) + value


def string_value(text: bytes) -> bytes:
    """A serialized AnyValue holding the string whose UTF-8 bytes are `text`."""
    return b"\x0a" + _varint(len(text)) + text


def string_of(value: bytes) -> bytes | None:
    """The UTF-8 bytes of a string AnyValue, or None when the value is not a string."""
    if value[:1] == b"\x0a":
        try:
            length, start = _read_varint(value, 1)
            if start + length == len(value):
                return value[start:]
        except wire.MalformedPayload:
            pass  # truncated: upb says what it holds, below
    return _parsed_string(value) if value else None


def _parsed_string(value: bytes) -> bytes | None:
    parsed = _any(value)
    return parsed.string_value.encode() if parsed.WhichOneof("value") == "string_value" else None


def _any(value: bytes) -> Any:
    try:
        return common_pb2.AnyValue.FromString(value)
    except DecodeError:
        return common_pb2.AnyValue()


_BOOLEANS = {b"\x10\x01": b"true", b"\x10\x00": b"false"}  # AnyValue{bool_value}, as SDKs write it


def text(value: bytes) -> bytes | None:
    """The value as text for comparisons (UTF-8 bytes); None for arrays, maps, bytes and empty values."""
    if value[:1] == b"\x0a":
        try:
            length, start = _read_varint(value, 1)
            if start + length == len(value):
                return value[start:]
        except wire.MalformedPayload:
            pass  # truncated: upb says what it holds, below
    boolean = _BOOLEANS.get(value)
    if boolean is not None:
        return boolean
    parsed = _any(value)
    kind = parsed.WhichOneof("value")
    if kind == "string_value":
        return parsed.string_value.encode()  # type: ignore[no-any-return]
    if kind == "bool_value":
        return b"true" if parsed.bool_value else b"false"
    if kind in ("int_value", "double_value"):
        return str(getattr(parsed, kind)).encode()
    return None


def hash_input(value: bytes) -> bytes:
    """What the hash action digests: a string's UTF-8 bytes; a bool as one byte 0x01/0x00; an int as 8
    bytes big-endian two's complement; a double as its 8 IEEE-754 bytes big-endian; bytes as they are;
    arrays, maps and empty values as their serialized AnyValue."""
    direct = string_of(value)
    if direct is not None:
        return direct
    parsed = _any(value)
    kind = parsed.WhichOneof("value")
    if kind == "bool_value":
        return b"\x01" if parsed.bool_value else b"\x00"
    if kind == "int_value":
        return struct.pack(">q", parsed.int_value)
    if kind == "double_value":
        return struct.pack(">d", parsed.double_value)
    if kind == "bytes_value":
        return bytes(parsed.bytes_value)
    return value
