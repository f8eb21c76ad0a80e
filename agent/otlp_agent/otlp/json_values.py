"""The pieces OTLP/JSON is converted with: the error that names a field path, protobuf wire primitives
(varints, tags, fixed-width packing), and the checks that turn one JSON value into one field's bytes.
Shared by `json_wire` (messages, fields, items) and `json_attributes` (KeyValue, AnyValue).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from typing import Any

from otlp_agent.otlp import wire

SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)
U32 = (0, 2**32 - 1)
U64 = (0, 2**64 - 1)


class JsonError(ValueError):
    """The JSON body cannot be converted; the message names the field path."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path

    def within(self, key: str | int) -> JsonError:
        """The same error seen from the enclosing object (its path gains `key`)."""
        step = f"[{key}]" if isinstance(key, int) else key
        joined = step + ("" if not self.path else self.path if self.path.startswith("[") else f".{self.path}")
        return JsonError(self.reason, joined)


class Rejection:
    """Counts items (spans, log records, metric data points) rejected alone, and keeps the first reason."""

    def __init__(self) -> None:
        self.count = 0
        self.first_error = ""

    def add(self, items: int, error: str) -> None:
        self.count += items
        self.first_error = self.first_error or error


Out = list[bytes]
#: Checks one JSON value and appends its field's bytes to Out; items rejected alone go to the Rejection.
Encoder = Callable[[Any, Out, Rejection], None]


# -- wire primitives ------------------------------------------------------------------------------------

pack_fixed64 = struct.Struct("<Q").pack
pack_sfixed64 = struct.Struct("<q").pack
pack_fixed32 = struct.Struct("<I").pack
pack_sfixed32 = struct.Struct("<i").pack
pack_double = struct.Struct("<d").pack
pack_float = struct.Struct("<f").pack
MASK64 = 0xFFFFFFFFFFFFFFFF


VARINTS = [wire.varint(value) for value in range(1 << 14)]  # every length below 16 KiB, precomputed
SHORT = len(VARINTS) - 8  # a length below this stays below 16 KiB after a tag and its own varint


def length(size: int) -> bytes:
    return VARINTS[size] if size < 16384 else wire.varint(size)


def tag(number: int, wire_type: int) -> bytes:
    return wire.varint(number << 3 | wire_type)


# -- JSON value checks ----------------------------------------------------------------------------------


def integer(value: Any, low: int, high: int) -> int:
    """An integer from a JSON number or decimal string, within [low, high]."""
    if type(value) is int:
        number = value
    elif type(value) is str:
        try:
            number = int(value)
        except ValueError:
            raise JsonError(f"expected an integer, got {value!r:.40}") from None
    elif type(value) is float and value.is_integer():
        number = int(value)
    else:
        raise JsonError(f"expected an integer, got {value!r:.40}")
    if not low <= number <= high:
        raise JsonError(f"{number} is out of range [{low}, {high}]")
    return number


def double(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str and value in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[value]
    raise JsonError(f"expected a number, got {type(value).__name__}")


def utf8(value: Any) -> bytes:
    if type(value) is not str:
        raise JsonError(f"expected a string, got {type(value).__name__}")
    return value.encode()  # orjson refuses lone surrogates, so every str it returns encodes


def boolean(value: Any) -> bytes:
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise JsonError(f"expected true or false, got {type(value).__name__}")


def base64_bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise JsonError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise JsonError("invalid base64") from None


def hex_id(value: Any, size: int) -> bytes:
    if type(value) is not str:
        raise JsonError("expected a hex string")
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        raise JsonError("ids are hex strings in OTLP/JSON") from None
    if decoded and len(decoded) != size:
        raise JsonError(f"expected {size * 2} hex digits, got {len(value)}")
    return decoded
