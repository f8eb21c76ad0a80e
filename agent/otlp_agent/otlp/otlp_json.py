"""OTLP/JSON <-> protobuf, following the OTLP JSON rules rather than proto3's generic JSON mapping.

The OTLP differences: trace and span ids are hex (not base64), field names may be lowerCamelCase or
snake_case, enums are integers, 64-bit integers may be strings, and unknown fields are ignored.
`google.protobuf.json_format` is ~100x slower than needed, so this walks each message descriptor once
(cached) and builds upb messages directly from orjson's output. An item (span, log record, metric) that
does not convert is rejected on its own and counted for `partial_success`; the rest of the request is kept.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import math
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from otlp_agent.api.spec import Signal
from otlp_agent.otlp.signals import SIGNALS

_HEX_ID_FIELDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
_ITEM_MESSAGES = {
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.logs.v1.LogRecord",
    "opentelemetry.proto.metrics.v1.Metric",
}
# Accepted range of each integer type; enums are int32 (proto3 enums are open).
_INT_RANGES = {
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1), FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_ENUM: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}  # fmt: skip
_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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


@dataclasses.dataclass
class Converted:
    """A converted request, with the items that had to be rejected."""

    message: Any
    rejected: int
    error: str


def parse_request(signal: Signal, body: bytes) -> Converted:
    """Convert an OTLP/JSON request body; raise JsonError when the request as a whole is unusable."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JsonError(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise JsonError("the body must be a JSON object")
    request_type = SIGNALS[signal].request_type
    rejection = _Rejection()
    # Build plain keyword dicts in Python, then let upb construct the whole tree in C in one call.
    try:
        kwargs = _convert(request_type.DESCRIPTOR, document, rejection)
    except JsonError as exc:
        raise JsonError(exc.reason, exc.path) from None
    except RecursionError:  # orjson accepts 1024 levels of nesting: more than the stack holds to convert them
        raise JsonError("nested too deeply") from None
    try:
        message = request_type(**kwargs)
    except (TypeError, ValueError) as exc:
        raise JsonError(f"cannot build the request: {exc}") from None
    return Converted(message, rejection.count, rejection.first_error)


class _Rejection:
    """Counts items rejected inside the request and keeps the first reason."""

    def __init__(self) -> None:
        self.count = 0
        self.first_error = ""

    def add(self, items: int, error: str) -> None:
        self.count += items
        self.first_error = self.first_error or error


# How to convert each JSON key of a message: (proto field name, kind, child descriptor, field descriptor).
_SCALAR, _MESSAGE, _REPEATED_SCALAR, _REPEATED_MESSAGE, _REPEATED_ITEM = range(5)
_Plan = dict[str, tuple[str, int, Any, Any]]


@functools.cache
def _plan(descriptor: Descriptor) -> _Plan:
    plan: _Plan = {}
    for field in descriptor.fields:
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.is_repeated and is_message:
            kind = _REPEATED_ITEM if field.message_type.full_name in _ITEM_MESSAGES else _REPEATED_MESSAGE
        elif field.is_repeated:
            kind = _REPEATED_SCALAR
        else:
            kind = _MESSAGE if is_message else _SCALAR
        entry = (field.name, kind, field.message_type if is_message else None, _scalar_converter(field))
        plan[field.name] = plan[field.json_name] = entry
    return plan


def _convert(descriptor: Descriptor, document: dict[str, Any], rejection: _Rejection) -> dict[str, Any]:
    """Keyword arguments for the message; JsonError paths are built only when something fails."""
    plan = _plan(descriptor)
    out: dict[str, Any] = {}
    for key, value in document.items():
        entry = plan.get(key)
        if entry is None or value is None:
            continue  # OTLP: unknown fields are ignored
        name, kind, child, scalar = entry
        try:
            if kind == _SCALAR:
                out[name] = scalar(value)
            elif kind == _MESSAGE:
                if type(value) is not dict:
                    raise JsonError("expected an object")
                out[name] = _convert(child, value, rejection)
            else:
                out[name] = _convert_repeated(kind, child, scalar, value, rejection)
        except JsonError as exc:
            raise exc.within(key) from None
    return out


def _convert_repeated(kind: int, child: Any, scalar: Any, value: Any, rejection: _Rejection) -> list[Any]:
    if type(value) is not list:
        raise JsonError("expected an array")
    out: list[Any] = []
    for index, item in enumerate(value):
        try:
            if kind == _REPEATED_SCALAR:
                out.append(scalar(item))
            elif type(item) is not dict:
                raise JsonError("expected an object")
            elif kind == _REPEATED_MESSAGE:
                out.append(_convert(child, item, rejection))
            else:
                out.append(_convert(child, item, rejection))
        except JsonError as exc:
            if kind != _REPEATED_ITEM:
                raise exc.within(index) from None
            # An item (span, log record, metric) that does not convert is rejected alone: partial success.
            error = exc.within(index)
            rejection.add(_item_weight(item) if type(item) is dict else 1, f"{child.name}{error}")
    return out


def _item_weight(item: dict[str, Any]) -> int:
    """Items a rejected JSON element stood for: a metric counts its data points."""
    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary"):
        data = item.get(kind)
        if isinstance(data, dict):
            points = data.get("dataPoints", data.get("data_points"))
            return len(points) if isinstance(points, list) else 0
    return 1


def _scalar_converter(field: FieldDescriptor) -> Any:
    """A function checking and converting one JSON value for this scalar field."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string
    if kind == FieldDescriptor.TYPE_BOOL:
        return _boolean
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return functools.partial(_integer, low=low, high=high)
    if kind in _FLOAT_TYPES:
        return _floating
    if kind == FieldDescriptor.TYPE_BYTES:
        size = _HEX_ID_FIELDS.get(field.name)
        return _base64 if size is None else functools.partial(_hex_id, size=size)
    return None


def _string(value: Any) -> str:
    if type(value) is str:
        return value
    raise JsonError(f"expected a string, got {type(value).__name__}")


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise JsonError(f"expected true or false, got {type(value).__name__}")


def _floating(value: Any) -> float:
    if type(value) in (int, float):
        return float(value)
    if type(value) is str and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    raise JsonError(f"expected a number, got {type(value).__name__}")


def _integer(value: Any, low: int, high: int) -> int:
    number: int | None = None
    if type(value) is int:
        number = value
    elif type(value) is str:
        with contextlib.suppress(ValueError):
            number = int(value)
    elif type(value) is float and value.is_integer():
        number = int(value)
    if number is None:
        raise JsonError(f"expected an integer, got {value!r:.40}")
    if not low <= number <= high:
        raise JsonError(f"{number} is out of range [{low}, {high}]")
    return number


def _base64(value: Any) -> bytes:
    if type(value) is not str:
        raise JsonError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
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


def to_json(message: Any) -> bytes:
    """Serialize a message as OTLP/JSON (camelCase, hex ids, int64 as strings, enums as integers)."""
    return orjson.dumps(_to_dict(message))


def _to_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                out[field.json_name] = [_to_dict(item) for item in value]
            else:
                out[field.json_name] = [_json_scalar(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            out[field.json_name] = _to_dict(value)
        else:
            out[field.json_name] = _json_scalar(field, value)
    return out


def _json_scalar(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if kind in _INT64_TYPES:
        return str(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return value.hex() if field.name in _HEX_ID_FIELDS else base64.b64encode(value).decode()
    if kind in _FLOAT_TYPES and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def response_json(signal: Signal, rejected: int = 0, message: str = "") -> bytes:
    """An Export*ServiceResponse as OTLP/JSON."""
    if not rejected and not message:
        return b"{}"
    field = SIGNALS[signal].rejected_field
    camel = "".join(part.capitalize() if i else part for i, part in enumerate(field.split("_")))
    return orjson.dumps({"partialSuccess": {camel: str(rejected), "errorMessage": message}})
