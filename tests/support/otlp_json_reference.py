"""The reference OTLP/JSON reading: `google.protobuf.json_format`, once the one difference between the two
mappings is undone (OTLP/JSON writes trace and span ids as hex, proto3 JSON as base64). The agent's
converter must build exactly what `reference` builds.

* `reference(signal, document)` — the request json_format builds from an OTLP/JSON document, as bytes.
* `wire_bytes(message)` — a message's deterministic serialization, for comparing messages as bytes.
* `HEX_KEYS` — the OTLP/JSON keys (either spelling) that hold hex ids.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from otlp_agent.api.spec import Signal
from otlp_agent.otlp.signals import SIGNALS

HEX_KEYS = {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}


def canonical(document: Any) -> Any:
    """OTLP/JSON -> proto3 JSON: the one difference is hex ids (base64 in proto3 JSON)."""
    if isinstance(document, list):
        return [canonical(item) for item in document]
    if not isinstance(document, dict):
        return document
    return {key: hex_to_base64(v) if key in HEX_KEYS else canonical(v) for key, v in document.items()}


def hex_to_base64(value: Any) -> Any:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except (TypeError, ValueError):
        return value  # not hex: json_format sees the same bad value


def reference(signal: Signal, document: Any) -> bytes:
    parsed = json_format.Parse(
        json.dumps(canonical(document)), SIGNALS[signal].request_type(), ignore_unknown_fields=True
    )
    return wire_bytes(parsed)


def wire_bytes(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))
