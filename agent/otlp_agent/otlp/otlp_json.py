"""OTLP/JSON <-> protobuf, following the OTLP JSON rules rather than proto3's generic JSON mapping.

The OTLP differences: trace and span ids are hex (not base64), field names may be lowerCamelCase or
snake_case, enums are integers, 64-bit integers may be strings, and unknown fields are ignored. Requests
are parsed with orjson and encoded straight to protobuf bytes by `json_wire` (no message objects); an item
(span, log record, metric) that does not convert is rejected on its own and counted for `partial_success`,
and the rest of the request is kept. The way out (`to_json`, for exporters speaking http/json) walks the
parsed message.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor

from otlp_agent.api.spec import Signal
from otlp_agent.otlp import json_wire
from otlp_agent.otlp.signals import SIGNALS

JsonError = json_wire.JsonError
MAX_VALUE_DEPTH = json_wire.MAX_VALUE_DEPTH

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


@dataclasses.dataclass(frozen=True)
class Converted:
    """A converted request as serialized protobuf, with the items that had to be rejected."""

    signal: Signal
    payload: bytes
    rejected: int
    error: str

    @property
    def message(self) -> Any:
        """The request parsed (for tests and tools; the data path keeps `payload` as bytes)."""
        return SIGNALS[self.signal].request_type.FromString(self.payload)


def parse_request(signal: Signal, body: bytes) -> Converted:
    """Convert an OTLP/JSON request body; raise JsonError when the request as a whole is unusable."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JsonError(f"invalid JSON: {exc}") from None
    if type(document) is not dict:
        raise JsonError("the body must be a JSON object")
    rejection = json_wire.Rejection()
    try:
        payload = json_wire.encode(SIGNALS[signal].request_type.DESCRIPTOR, document, rejection)
    except RecursionError:  # values nest 30 deep at most, but a handler may run with little stack left
        raise JsonError("nested too deeply") from None
    return Converted(signal, payload, rejection.count, rejection.first_error)


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
        return value.hex() if field.name in json_wire.HEX_ID_FIELDS else base64.b64encode(value).decode()
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
