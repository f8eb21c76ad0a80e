"""OTLP/JSON documents (as orjson returns them) straight to protobuf wire bytes, with no message objects.

Each message descriptor becomes, once, a table of small field encoders keyed by both JSON spellings
(lowerCamelCase and snake_case); an encoder checks one JSON value and appends its field's bytes. Attributes
(KeyValue / AnyValue) are most of every request, so they have hand-written encoders with a fast path for
the common `{"key": ..., "value": {"stringValue": ...}}` shape. This is the byte-level data path, so it is
hand-written rather than delegated to a library (json_format is ~10x slower than this, and building upb
messages from dicts ~3x).

Semantics, as json_format has them where OTLP agrees: `null` means unset; proto3 fields without presence
are left out when they hold their default (oneof members and `optional` fields are always written); numbers
may be JSON numbers or decimal strings and must fit their type; doubles accept "NaN", "Infinity" and
"-Infinity"; bytes are base64, except trace and span ids, which are hex (OTLP). Where json_format refuses
and OTLP receivers commonly do not: unknown fields are ignored; a field given twice (camelCase and
snake_case), or two members of one oneof, merge as protobuf merges binary messages (the last scalar wins).
AnyValue nesting is bounded (`MAX_VALUE_DEPTH`) so every accepted request parses with upb's default limits.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

HEX_ID_FIELDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
ITEM_MESSAGES = {
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.logs.v1.LogRecord",
    "opentelemetry.proto.metrics.v1.Metric",
}
_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
#: Arrays / kvlists nested in one attribute value at most; a deeper value rejects its item. 30 levels keep
#: the deepest request (request > resource > scope > item > KeyValue, then 3 messages a level) under upb's
#: parse depth limit of 100.
MAX_VALUE_DEPTH = 30
SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


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
Plan = dict[str, Encoder]


def encode(descriptor: Descriptor, document: dict[str, Any], rejection: Rejection) -> bytes:
    """The serialized message `descriptor` for a JSON object; raises JsonError naming the field path."""
    return _message(plan(descriptor), document, rejection)


# -- wire primitives ------------------------------------------------------------------------------------

_pack_fixed64 = struct.Struct("<Q").pack
_pack_sfixed64 = struct.Struct("<q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_sfixed32 = struct.Struct("<i").pack
_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _varint(value: int) -> bytes:
    """An unsigned varint (negative int32/int64 values are passed as their 64-bit two's complement)."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_VARINTS = [_varint(value) for value in range(1 << 14)]  # every length below 16 KiB, precomputed
_SHORT = len(_VARINTS) - 8  # a length below this stays below 16 KiB after a tag and its own varint


def _length(size: int) -> bytes:
    return _VARINTS[size] if size < 16384 else _varint(size)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


# -- JSON value checks ----------------------------------------------------------------------------------


def _integer(value: Any, low: int, high: int) -> int:
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


def _double(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str and value in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[value]
    raise JsonError(f"expected a number, got {type(value).__name__}")


def _utf8(value: Any) -> bytes:
    if type(value) is not str:
        raise JsonError(f"expected a string, got {type(value).__name__}")
    return value.encode()  # orjson refuses lone surrogates, so every str it returns encodes


def _bool(value: Any) -> bytes:
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise JsonError(f"expected true or false, got {type(value).__name__}")


def _base64(value: Any) -> bytes:
    if type(value) is not str:
        raise JsonError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise JsonError("invalid base64") from None


def _hex_id(value: Any, size: int) -> bytes:
    if type(value) is not str:
        raise JsonError("expected a hex string")
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        raise JsonError("ids are hex strings in OTLP/JSON") from None
    if decoded and len(decoded) != size:
        raise JsonError(f"expected {size * 2} hex digits, got {len(value)}")
    return decoded


# -- scalar fields --------------------------------------------------------------------------------------

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
# type -> (range, wire type, bytes of a checked int); enums are int32 (proto3 enums are open)
_INTEGERS: dict[int, tuple[tuple[int, int], int, Callable[[int], bytes]]] = {
    FieldDescriptor.TYPE_INT32: (_I32, 0, lambda n: _varint(n & _MASK64)),
    FieldDescriptor.TYPE_ENUM: (_I32, 0, lambda n: _varint(n & _MASK64)),
    FieldDescriptor.TYPE_INT64: (_I64, 0, lambda n: _varint(n & _MASK64)),
    FieldDescriptor.TYPE_UINT32: (_U32, 0, _varint),
    FieldDescriptor.TYPE_UINT64: (_U64, 0, _varint),
    FieldDescriptor.TYPE_SINT32: (_I32, 0, lambda n: _varint((n << 1) ^ (n >> 31))),
    FieldDescriptor.TYPE_SINT64: (_I64, 0, lambda n: _varint((n << 1) ^ (n >> 63))),
    FieldDescriptor.TYPE_FIXED32: (_U32, 5, _pack_fixed32),
    FieldDescriptor.TYPE_SFIXED32: (_I32, 5, _pack_sfixed32),
    FieldDescriptor.TYPE_FIXED64: (_U64, 1, _pack_fixed64),
    FieldDescriptor.TYPE_SFIXED64: (_I64, 1, _pack_sfixed64),
}


def _value_bytes(field: FieldDescriptor) -> tuple[int, Callable[[Any], bytes]]:
    """(wire type, JSON value -> the field's value bytes) for a scalar field (length-delimited values
    without their length)."""
    kind = field.type
    if kind in _INTEGERS:
        (low, high), wire_type, pack = _INTEGERS[kind]
        return wire_type, lambda value: pack(_integer(value, low, high))
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return 1, lambda value: _pack_double(_double(value))
    if kind == FieldDescriptor.TYPE_FLOAT:
        return 5, lambda value: _pack_float(_double(value))
    if kind == FieldDescriptor.TYPE_BOOL:
        return 0, _bool
    if kind == FieldDescriptor.TYPE_STRING:
        return 2, _utf8
    size = HEX_ID_FIELDS.get(field.name)
    if size is not None:
        return 2, lambda value: _hex_id(value, size)
    return 2, _base64


# The bytes of every default value once converted (-0.0 is not one: its sign bit is set, as upb sees it).
_DEFAULTS = frozenset({b"\x00", b"\x00" * 4, b"\x00" * 8})


def _scalar_field(field: FieldDescriptor) -> Encoder:
    # proto3 fields without presence are not written when they hold the default, as upb serializes them.
    keep_default = field.has_presence
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string_field(_tag(field.number, 2), keep_default)
    if keep_default:
        return _any_scalar_field(field, True)
    if field.type == FieldDescriptor.TYPE_FIXED64:
        return _fixed64_field(_tag(field.number, 1))
    if field.type == FieldDescriptor.TYPE_BYTES and field.name in HEX_ID_FIELDS:
        return _hex_id_field(_tag(field.number, 2), HEX_ID_FIELDS[field.name])
    if field.type in _SMALL_VARINT_TYPES:
        return _small_varint_field(field)
    return _any_scalar_field(field, False)


def _any_scalar_field(field: FieldDescriptor, keep_default: bool) -> Encoder:
    wire_type, convert = _value_bytes(field)
    tag = _tag(field.number, wire_type)
    if wire_type == 2:

        def length_delimited(value: Any, out: Out, rejection: Rejection) -> None:
            data = convert(value)
            if data or keep_default:
                out += (tag, _length(len(data)), data)

        return length_delimited

    def fixed_or_varint(value: Any, out: Out, rejection: Rejection) -> None:
        data = convert(value)
        if keep_default or data not in _DEFAULTS:
            out += (tag, data)

    return fixed_or_varint


# Varint types whose small non-negative values are their own varint (enums, counts, flags).
_SMALL_VARINT_TYPES = {
    FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
}  # fmt: skip


def _small_varint_field(field: FieldDescriptor) -> Encoder:
    """Enums and counts: a small JSON integer is looked up; anything else takes the general way."""
    tag = _tag(field.number, 0)
    general = _any_scalar_field(field, False)

    def small_varint(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is int and 0 <= value < 16384:
            if value:
                out += (tag, _VARINTS[value])
        else:
            general(value, out, rejection)

    return small_varint


def _hex_id_field(tag: bytes, size: int) -> Encoder:
    def hex_id(value: Any, out: Out, rejection: Rejection) -> None:
        data = _hex_id(value, size)
        if data:
            out += (tag, _VARINTS[size], data)

    return hex_id


def _string_field(tag: bytes, keep_default: bool) -> Encoder:
    def string(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not str:
            raise JsonError(f"expected a string, got {type(value).__name__}")
        data = value.encode()
        if data or keep_default:
            out += (tag, _length(len(data)), data)

    return string


def _fixed64_field(tag: bytes) -> Encoder:
    """Timestamps and counts (most of an item's numbers), usually decimal strings."""
    low, high = _U64

    def fixed64(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is str:
            try:
                number = int(value)
            except ValueError:
                raise JsonError(f"expected an integer, got {value!r:.40}") from None
        else:
            number = _integer(value, low, high)
        if number:
            if not low <= number <= high:
                raise JsonError(f"{number} is out of range [{low}, {high}]")
            out += (tag, _pack_fixed64(number))

    return fixed64


def _repeated_scalar_field(field: FieldDescriptor) -> Encoder:
    wire_type, convert = _value_bytes(field)
    tag = _tag(field.number, 2)
    if wire_type == 2:  # strings and bytes: one field each

        def each(value: Any, out: Out, rejection: Rejection) -> None:
            for data in _converted_list(value, convert):
                out += (tag, _length(len(data)), data)

        return each

    def packed(value: Any, out: Out, rejection: Rejection) -> None:  # numbers: packed, as proto3 writes them
        data = b"".join(_converted_list(value, convert))
        if data:
            out += (tag, _length(len(data)), data)

    return packed


def _converted_list(value: Any, convert: Callable[[Any], bytes]) -> list[bytes]:
    if type(value) is not list:
        raise JsonError("expected an array")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(convert(item))
        except JsonError as exc:
            raise exc.within(index) from None
    return out


# -- message fields -------------------------------------------------------------------------------------


def _message_field(number: int, child: Plan) -> Encoder:
    tag = _tag(number, 2)

    def message(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not dict:
            raise JsonError("expected an object")
        data = _message(child, value, rejection)
        out += (tag, _length(len(data)), data)

    return message


def _repeated_message_field(number: int, child: Plan) -> Encoder:
    tag = _tag(number, 2)

    def messages(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not list:
            raise JsonError("expected an array")
        for index, item in enumerate(value):
            if type(item) is not dict:
                raise JsonError("expected an object", f"[{index}]")
            try:
                data = _message(child, item, rejection)
            except JsonError as exc:
                raise exc.within(index) from None
            out += (tag, _length(len(data)), data)

    return messages


def _item_field(number: int, child: Plan, name: str) -> Encoder:
    """A repeated field of items (spans, log records, metrics): a bad item is rejected alone."""
    tag = _tag(number, 2)

    def items(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not list:
            raise JsonError("expected an array")
        for index, item in enumerate(value):
            try:
                if type(item) is not dict:
                    raise JsonError("expected an object")
                data = _message(child, item, rejection)
            except JsonError as exc:
                rejection.add(item_weight(item) if type(item) is dict else 1, f"{name}{exc.within(index)}")
                continue
            out += (tag, _length(len(data)), data)

    return items


def item_weight(item: dict[str, Any]) -> int:
    """Items a rejected JSON element stood for: a metric counts its data points."""
    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary"):
        data = item.get(kind)
        if isinstance(data, dict):
            points = data.get("dataPoints", data.get("data_points"))
            return len(points) if isinstance(points, list) else 0
    return 1


def _message(fields: Plan, document: dict[str, Any], rejection: Rejection) -> bytes:
    """The serialized message; JsonError paths are built only when something fails."""
    out: Out = []
    for key, value in document.items():
        field = fields.get(key)
        if field is None or value is None:
            continue  # OTLP: unknown fields are ignored; null means unset
        try:
            field(value, out, rejection)
        except JsonError as exc:
            raise exc.within(key) from None
    return b"".join(out)


# -- plans ----------------------------------------------------------------------------------------------

_PLANS: dict[str, Plan] = {}


def plan(descriptor: Descriptor) -> Plan:
    """Encoders by JSON key (camelCase and snake_case) for `descriptor`'s fields, built once."""
    fields = _PLANS.get(descriptor.full_name)
    if fields is None:
        fields = _PLANS[descriptor.full_name] = {}  # registered before filling: messages refer to each other
        for field in descriptor.fields:
            fields[field.name] = fields[field.json_name] = _field_encoder(field)
    return fields


def _field_encoder(field: FieldDescriptor) -> Encoder:
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return _repeated_scalar_field(field) if field.is_repeated else _scalar_field(field)
    child = field.message_type
    if child.full_name == _KEY_VALUE and field.is_repeated:
        return _attributes_field(field.number)
    if child.full_name == _ANY_VALUE:
        return _any_value_field(field.number)
    fields = plan(child)
    if not field.is_repeated:
        return _message_field(field.number, fields)
    if child.full_name in ITEM_MESSAGES:
        return _item_field(field.number, fields, child.name)
    return _repeated_message_field(field.number, fields)


# -- attributes: KeyValue and AnyValue by hand, nesting depth counted -----------------------------------

_KEY_TAG, _VALUE_TAG, _KEY_STRINDEX_TAG = _tag(1, 2), _tag(2, 2), _tag(3, 0)
_STRING_TAG, _BOOL_TAG, _INT_TAG, _DOUBLE_TAG = _tag(1, 2), _tag(2, 0), _tag(3, 0), _tag(4, 1)
_ARRAY_TAG, _KVLIST_TAG, _BYTES_TAG, _STRINDEX_TAG = _tag(5, 2), _tag(6, 2), _tag(7, 2), _tag(8, 0)
_VALUES_TAG = _tag(1, 2)


def _attributes_field(number: int) -> Encoder:
    tag = _tag(number, 2)

    def attributes(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not list:
            raise JsonError("expected an array")
        for index, item in enumerate(value):
            # Inline fast path (a function call per attribute is a tenth of the cost): a non-empty key and
            # a short stringValue, the common attribute. Anything else goes the general way.
            if type(item) is dict and len(item) == 2:
                key = item.get("key")
                member = item.get("value")
                if type(key) is str and key and type(member) is dict and len(member) == 1:
                    text = member.get("stringValue")
                    if type(text) is str and len(text) < _SHORT_TEXT and len(key) < _SHORT_TEXT:
                        name = key.encode()
                        data = text.encode()
                        head = _VARINTS[len(data)]
                        data = b"".join((
                            _KEY_TAG, _VARINTS[len(name)], name,
                            _VALUE_TAG, _VARINTS[1 + len(head) + len(data)], _STRING_TAG, head, data,
                        ))  # fmt: skip
                    else:
                        data = _scalar_key_value(key, member) or _general_key_value(item, index)
                else:
                    data = _general_key_value(item, index)
            else:
                data = _general_key_value(item, index)
            size = len(data)
            out += (tag, _VARINTS[size] if size < 16384 else _varint(size), data)

    return attributes


# A str of fewer characters encodes to fewer than _SHORT bytes (at most 4 bytes per character).
_SHORT_TEXT = _SHORT // 4


def _general_key_value(item: Any, index: int) -> bytes:
    try:
        return _key_value(item, 0)
    except JsonError as exc:
        raise exc.within(index) from None


def _any_value_field(number: int) -> Encoder:
    tag = _tag(number, 2)

    def any_value(value: Any, out: Out, rejection: Rejection) -> None:
        data = _any_value(value, 0)
        out += (tag, _length(len(data)), data)

    return any_value


def _scalar_key_value(key: str, member: dict[str, Any]) -> bytes | None:
    """An attribute with an int, bool or double value, in one go; None for anything else (the general path
    then converts it, or says precisely what is wrong)."""
    [(kind, scalar)] = member.items()
    if kind == "intValue":
        if type(scalar) is int and 0 <= scalar < 16384:
            value = _INT_TAG + _VARINTS[scalar]
        else:
            try:
                value = _INT_TAG + _varint(_integer(scalar, *_I64) & _MASK64)
            except JsonError:
                return None
    elif kind == "boolValue" and type(scalar) is bool:
        value = _BOOL_TAG + (b"\x01" if scalar else b"\x00")
    elif kind == "doubleValue" and type(scalar) is float:
        value = _DOUBLE_TAG + _pack_double(scalar)
    else:
        return None
    name = key.encode()
    return b"".join((_KEY_TAG, _length(len(name)), name, _VALUE_TAG, _VARINTS[len(value)], value))


def _key_value(item: Any, depth: int) -> bytes:
    if type(item) is not dict:
        raise JsonError("expected an object")
    out: Out = []
    for key, value in item.items():
        if value is None:
            continue
        try:
            if key == "key":
                data = _utf8(value)
                if data:
                    out += (_KEY_TAG, _length(len(data)), data)
            elif key == "value":
                data = _any_value(value, depth)
                out += (_VALUE_TAG, _length(len(data)), data)
            elif key in ("keyStrindex", "key_strindex"):
                number = _integer(value, *_I32)
                if number:
                    out += (_KEY_STRINDEX_TAG, _varint(number & _MASK64))
        except JsonError as exc:
            raise exc.within(key) from None
    return b"".join(out)


def _any_value(value: Any, depth: int) -> bytes:
    if type(value) is not dict:
        raise JsonError("expected an object")
    out: Out = []
    for key, member in value.items():
        if member is None:
            continue
        try:
            _any_value_member(key, member, depth, out)
        except JsonError as exc:
            raise exc.within(key) from None
    return b"".join(out)


def _any_value_member(key: str, member: Any, depth: int, out: Out) -> None:
    """One member of AnyValue's oneof (written even when it holds a default: oneof members have presence)."""
    if key in ("stringValue", "string_value"):
        data = _utf8(member)
        out += (_STRING_TAG, _length(len(data)), data)
    elif key in ("intValue", "int_value"):
        out += (_INT_TAG, _varint(_integer(member, *_I64) & _MASK64))
    elif key in ("boolValue", "bool_value"):
        out += (_BOOL_TAG, _bool(member))
    elif key in ("doubleValue", "double_value"):
        out += (_DOUBLE_TAG, _pack_double(_double(member)))
    elif key in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        if depth >= MAX_VALUE_DEPTH:
            raise JsonError(f"values nested more than {MAX_VALUE_DEPTH} deep")
        if type(member) is not dict:
            raise JsonError("expected an object")
        array = key.startswith("array")
        data = _value_list(member, depth + 1, array)
        out += (_ARRAY_TAG if array else _KVLIST_TAG, _length(len(data)), data)
    elif key in ("bytesValue", "bytes_value"):
        data = _base64(member)
        out += (_BYTES_TAG, _length(len(data)), data)
    elif key in ("stringValueStrindex", "string_value_strindex"):
        out += (_STRINDEX_TAG, _varint(_integer(member, *_I32) & _MASK64))


def _value_list(member: dict[str, Any], depth: int, array: bool) -> bytes:
    """ArrayValue (of AnyValues) or KeyValueList (of KeyValues): one repeated field, `values`."""
    values = member.get("values")
    if values is None:
        return b""
    if type(values) is not list:
        raise JsonError("expected an array", "values")
    out: Out = []
    for index, item in enumerate(values):
        try:
            data = _any_value(item, depth) if array else _key_value(item, depth)
        except JsonError as exc:
            raise exc.within(index).within("values") from None
        out += (_VALUES_TAG, _length(len(data)), data)
    return b"".join(out)
