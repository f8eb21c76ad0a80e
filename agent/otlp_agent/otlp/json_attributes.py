"""OTLP/JSON attributes to protobuf bytes, by hand: KeyValue and AnyValue are most of every request.

The common attribute, `{"key": "k", "value": {"stringValue": "v"}}` (or an int, bool or double value), takes
an inline fast path; anything else (snake_case, unknown fields, nested arrays and kvlists, bytes, errors)
takes the general path, which says precisely what is wrong. AnyValue nesting is bounded (`MAX_VALUE_DEPTH`)
so every accepted request parses with upb's default limits.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.otlp import json_values, wire

# Module-level names for the hot paths: a global lookup per use, not a module attribute lookup.
_I32 = json_values.I32
_I64 = json_values.I64
_MASK64 = json_values.MASK64
_VARINTS = json_values.VARINTS
_base64_bytes = json_values.base64_bytes
_boolean = json_values.boolean
_double = json_values.double
_integer = json_values.integer
_length = json_values.length
_pack_double = json_values.pack_double
_tag = json_values.tag
_utf8 = json_values.utf8
_varint = wire.varint
JsonError = json_values.JsonError
Out = json_values.Out
Rejection = json_values.Rejection
Encoder = json_values.Encoder

#: Arrays / kvlists nested in one attribute value at most; a deeper value rejects its item. 30 levels keep
#: the deepest request (request > resource > scope > item > KeyValue, then 3 messages a level) under upb's
#: parse depth limit of 100.
MAX_VALUE_DEPTH = 30


# -- attributes: KeyValue and AnyValue by hand, nesting depth counted -----------------------------------

_KEY_TAG, _VALUE_TAG, _KEY_STRINDEX_TAG = _tag(1, 2), _tag(2, 2), _tag(3, 0)
_STRING_TAG, _BOOL_TAG, _INT_TAG, _DOUBLE_TAG = _tag(1, 2), _tag(2, 0), _tag(3, 0), _tag(4, 1)
_ARRAY_TAG, _KVLIST_TAG, _BYTES_TAG, _STRINDEX_TAG = _tag(5, 2), _tag(6, 2), _tag(7, 2), _tag(8, 0)
_VALUES_TAG = _tag(1, 2)


#: Converted attributes remembered: (key, string) or (key, (member, string)) -> the KeyValue with its
#: length, for {"key": key, "value": {"stringValue": string}} and for the other members written as strings
#: (intValue, as OTLP/JSON writes int64). An SDK sends the same resource attributes in every request and
#: most span attributes take a few values. Only short ones are kept; the cache starts over when full. JSON
#: numbers and booleans are never keys: 1, 1.0 and true are equal in Python, their conversions are not.
CACHE_SIZE = 4096
_CACHEABLE = 256  # characters of key and value together
_cache: dict[tuple[Any, ...], bytes] = {}


def attributes_field(number: int) -> Encoder:
    tag = _tag(number, 2)

    def attributes(value: Any, out: Out, rejection: Rejection) -> None:
        if type(value) is not list:
            raise JsonError("expected an array")
        get = _cache.get
        for item in value:
            # An attribute seen before costs a few lookups: a hit proves the key and the value are the
            # cached strings (only a str equals a str); anything else (a miss, a missing member, another
            # JSON type, more members) is checked and converted by _key_value_field.
            try:
                member = item["value"]
                text = member.get("stringValue")
                found = get((item["key"], text) if text is not None else (item["key"], *member.items()))
            except (KeyError, TypeError, AttributeError):
                found = text = None
            if found is not None and len(item) == 2 and len(member) == 1:
                out += (tag, found)
            elif type(text) is str and len(item) == 2 and len(member) == 1 and type(item["key"]) is str:
                key = item["key"]  # a string attribute not seen before (a value of many, usually)
                out += (tag, _string_key_value(key, text) if key else _key_value_field(item, value))
            else:
                out += (tag, _key_value_field(item, value))

    return attributes


def _key_value_field(item: Any, items: list[Any]) -> bytes:
    """The KeyValue `item` (of the list `items`) with its length: new short string and int or bool
    attributes in one go (and remembered), anything else the general way."""
    if type(item) is dict and len(item) == 2:
        key = item.get("key")
        member = item.get("value")
        if type(key) is str and key and type(member) is dict and len(member) == 1:
            text = member.get("stringValue")
            if type(text) is str:
                return _string_key_value(key, text)
            found = _scalar_key_value(key, member)
            if found is not None:
                return found
    index = next(i for i, each in enumerate(items) if each is item)
    return _general_key_value(item, index)


def _string_key_value(key: str, text: str) -> bytes:
    """The KeyValue {key, stringValue: text} with its length, remembered when short."""
    head = _key_heads.get(key)
    if head is None:
        head = _key_head(key)
    data = text.encode()
    size = len(data)
    if size < 126 and len(head) + size < 125:  # every length one byte: one join
        found = b"".join(
            (_VARINTS[len(head) + 3 + size], head, _VARINTS[size + 2], _STRING_TAG, _VARINTS[size], data)
        )
    else:
        value = b"".join((_STRING_TAG, _length(size), data))
        found = b"".join((head, _length(len(value)), value))
        found = _length(len(found)) + found
    if len(key) + len(text) <= _CACHEABLE:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[(key, text)] = found
    return found


#: A KeyValue's bytes up to its value's length (`0A len key 12`), per key (keys are few).
_key_heads: dict[str, bytes] = {}


def _key_head(key: str) -> bytes:
    name = key.encode()
    head = b"".join((_KEY_TAG, _length(len(name)), name, _VALUE_TAG))
    if len(name) <= _CACHEABLE:
        if len(_key_heads) >= CACHE_SIZE:
            _key_heads.clear()
        _key_heads[key] = head
    return head


def _general_key_value(item: Any, index: int) -> bytes:
    """A KeyValue in any form, with its length; JsonError names what is wrong."""
    try:
        data = _key_value(item, 0)
    except JsonError as exc:
        raise exc.within(index) from None
    return _length(len(data)) + data


def any_value_field(number: int) -> Encoder:
    tag = _tag(number, 2)

    def any_value(value: Any, out: Out, rejection: Rejection) -> None:
        data = _any_value(value, 0)
        out += (tag, _length(len(data)), data)

    return any_value


def _scalar_key_value(key: str, member: dict[str, Any]) -> bytes | None:
    """An attribute with an int, bool or double value, with its length, in one go; None for anything else
    (the general path then converts it, or says precisely what is wrong). Ints written as strings (as
    OTLP/JSON writes int64) are remembered; JSON numbers and booleans are not, since 1, 1.0 and true are
    equal keys."""
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
    found = b"".join((_KEY_TAG, _length(len(name)), name, _VALUE_TAG, _VARINTS[len(value)], value))
    found = _length(len(found)) + found
    if type(scalar) is str and len(key) + len(scalar) <= _CACHEABLE:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[(key, (kind, scalar))] = found
    return found


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
        out += (_BOOL_TAG, _boolean(member))
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
        data = _base64_bytes(member)
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
