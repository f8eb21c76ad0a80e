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

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from otlp_agent.otlp import json_attributes, json_values, wire

# Module-level names for the hot paths: a global lookup per use, not a module attribute lookup.
_I32 = json_values.I32
_I64 = json_values.I64
_MASK64 = json_values.MASK64
_U32 = json_values.U32
_U64 = json_values.U64
_VARINTS = json_values.VARINTS
_base64_bytes = json_values.base64_bytes
_boolean = json_values.boolean
_double = json_values.double
_hex_id = json_values.hex_id
_integer = json_values.integer
_length = json_values.length
_pack_double = json_values.pack_double
_pack_fixed32 = json_values.pack_fixed32
_pack_fixed64 = json_values.pack_fixed64
_pack_float = json_values.pack_float
_pack_sfixed32 = json_values.pack_sfixed32
_pack_sfixed64 = json_values.pack_sfixed64
_tag = json_values.tag
_utf8 = json_values.utf8
_varint = wire.varint

HEX_ID_FIELDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
ITEM_MESSAGES = {
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.logs.v1.LogRecord",
    "opentelemetry.proto.metrics.v1.Metric",
}
_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
MAX_VALUE_DEPTH = json_attributes.MAX_VALUE_DEPTH


JsonError = json_values.JsonError
Rejection = json_values.Rejection
Out = json_values.Out
Encoder = json_values.Encoder
Plan = dict[str, Encoder]


def encode(descriptor: Descriptor, document: dict[str, Any], rejection: Rejection) -> bytes:
    """The serialized message `descriptor` for a JSON object; raises JsonError naming the field path."""
    return _message(plan(descriptor), document, rejection)


# -- scalar fields --------------------------------------------------------------------------------------

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
        return 0, _boolean
    if kind == FieldDescriptor.TYPE_STRING:
        return 2, _utf8
    size = HEX_ID_FIELDS.get(field.name)
    if size is not None:
        return 2, lambda value: _hex_id(value, size)
    return 2, _base64_bytes


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
    head = tag + _VARINTS[size]

    def hex_id(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is str and len(value) == 2 * size:  # the common id, decoded inline
            try:
                data = bytes.fromhex(value)
            except ValueError:
                data = b""
            if len(data) == size:
                out += (head, data)
                return
        data = _hex_id(value, size)  # anything else: checked, and refused with a reason
        if data:
            out += (head, data)

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
    empty = tag + _VARINTS[0]

    def message(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not dict:
            raise JsonError("expected an object")
        if not value:  # "status": {} and the like
            out.append(empty)
            return
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
        return json_attributes.attributes_field(field.number)
    if child.full_name == _ANY_VALUE:
        return json_attributes.any_value_field(field.number)
    fields = plan(child)
    if not field.is_repeated:
        return _message_field(field.number, fields)
    if child.full_name in ITEM_MESSAGES:
        return _item_field(field.number, fields, child.name)
    return _repeated_message_field(field.number, fields)
