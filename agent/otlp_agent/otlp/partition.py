"""Cutting a request into one request per owner — by trace id, or by resource — on the wire.

Load balancing (`exporter/transport/loadbalancing.py`) sends every span of a trace, or every item of a
resource, to the same address: it names an owner for each key, and this module cuts the request so each
owner gets exactly its items, never parsing an item:

- traces: each span's trace id is read where SDKs put it, the first field of the Span (`0a 10` then 16
  bytes); a span written otherwise has its top-level fields walked; a span without a 16-byte trace id goes
  with its resource;
- logs: each record's trace id (field 9) is found by walking the record's top-level fields; records
  without one go with their resource;
- metrics (and `by_resource`): whole resource entries go to the owner of their resource.

Nothing is cut when every item has the same owner — the common case of one trace per request, or one
address: that owner gets the request's own bytes. Otherwise each owner's request repeats the resource and
scope headers (every field but the list of scopes / items) around the slices of its items; consecutive
items of one owner stay one slice. Item counts come from the walk (one per span or record); metrics count
their data points with a upb parse of every share but the largest, which gets the rest (as routing does).

`owner(key)` is called once per distinct key of a request (the caller's ring lookup is cached here per
call), and `resource_owner(resource)` once per resource entry that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.resource.v1 import resource_pb2

from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire

#: An owner for a key (a trace id, or a resource key): an index the caller understands.
Owner = Callable[[bytes], int]
#: Per owner: its request bytes and item count.
Parts = dict[int, tuple[bytes, int]]

_SCOPES = 2  # ResourceSpans.scope_spans / ResourceLogs.scope_logs
_ITEMS = 2  # ScopeSpans.spans / ScopeLogs.log_records
_LOG_TRACE_ID = 9  # LogRecord.trace_id
_TRACE_ID_LENGTH = 16
_ITEM_TAG = 0x12  # field 2, length-delimited

# One scope's items: [owner, slice start, slice end, items] runs, consecutive items of one owner merged.
_Runs = list[list[int]]
# One resource entry: (its header, [(scope header, runs), ...]); a header is every field but the list.
_Entry = tuple[bytes, list[tuple[bytes, _Runs]]]


def by_trace(signal: Signal, data: bytes, items: int, owner: Owner, resource_owner: Owner) -> Parts:
    """Each owner's part of a traces or logs request, by trace id (items without one: by resource)."""
    if signal == Signal.metrics:
        return by_resource(signal, data, items, resource_owner)
    logs = signal == Signal.logs
    cache: dict[bytes, int] = {}
    entries: list[_Entry] = []
    counts: dict[int, int] = {}
    for _, value_start, end in wire.resource_entries(data):
        fallback: list[int] = []  # the resource's owner, looked up when first needed

        def of_resource(start: int = value_start, stop: int = end, found: list[int] = fallback) -> int:
            if not found:
                found.append(resource_owner(wire.resource_bytes(data, start, stop)))
            return found[0]

        scopes = []
        header = []
        for number, field_start, scope_start, scope_end in wire.fields(data, value_start, end):
            if number == _SCOPES:
                scope_header: list[bytes] = []
                runs = _runs(
                    data, scope_start, scope_end, logs, owner, cache, of_resource, counts, scope_header
                )
                scopes.append((b"".join(scope_header), runs))
            else:
                header.append(data[field_start:scope_end])
        entries.append((b"".join(header), scopes))
    if len(counts) <= 1:
        return {next(iter(counts)): (data, items)} if counts else {}
    return {who: (_build(data, entries, who), count) for who, count in counts.items()}


def by_resource(signal: Signal, data: bytes, items: int, resource_owner: Owner) -> Parts:
    """Each owner's part of a request, whole resource entries going to the owner of their resource."""
    groups: dict[int, list[bytes]] = {}
    for start, value_start, end in wire.resource_entries(data):
        who = resource_owner(wire.resource_bytes(data, value_start, end))
        groups.setdefault(who, []).append(data[start:end])
    if len(groups) <= 1:
        return {who: (data, items) for who in groups}
    chunks = {who: b"".join(slices) for who, slices in groups.items()}
    largest = max(chunks, key=lambda who: len(chunks[who]))
    counts = {who: wire.validate_and_count(signal, chunk) for who, chunk in chunks.items() if who != largest}
    counts[largest] = max(0, items - sum(counts.values()))
    return {who: (chunks[who], counts[who]) for who in chunks}


def resource_key(resource: bytes, attributes: tuple[str, ...]) -> bytes:
    """The key of a serialized Resource: its bytes, or with `attributes` the text of those attributes'
    values in that order (absent ones empty), so resources differing elsewhere share a key."""
    if not attributes:
        return resource
    try:
        parsed = resource_pb2.Resource.FromString(resource)
    except DecodeError:  # receivers validated it; never crash on it anyway
        return resource
    values = {kv.key: kv.value for kv in parsed.attributes}
    text = [_text(values[name]) if name in values else "" for name in attributes]
    return "\x00".join(text).encode("utf-8", "surrogatepass")


def _text(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return str(getattr(value, kind))
    return bytes(value.SerializeToString(deterministic=True)).hex()


def _runs(
    data: bytes,
    start: int,
    end: int,
    logs: bool,
    owner: Owner,
    cache: dict[bytes, int],
    of_resource: Callable[[], int],
    counts: dict[int, int],
    header: list[bytes],
) -> _Runs:
    """The owner runs `[owner, start, end, items]` of one scope's items (spans or log records), counting
    items per owner; the scope's other fields go to `header`. The hot loop of load balancing: per item one
    tag byte, one length varint (decoded inline up to two bytes), the trace id's slice and a dict lookup."""
    runs: _Runs = []
    run: list[int] = [-1, -1, -1, 0]
    pos = start
    while pos < end:
        field_start = pos
        if data[pos] != _ITEM_TAG:  # the scope itself, schema_url, an unknown field: the header
            pos = next(wire.fields(data, pos, end))[3]
            header.append(data[field_start:pos])
            continue
        low = data[pos + 1]
        if low < 0x80:
            value_start, pos = pos + 2, pos + 2 + low
        elif data[pos + 2] < 0x80:
            value_start = pos + 3
            pos = value_start + ((low & 0x7F) | (data[pos + 2] << 7))
        else:
            length, value_start = wire.read_varint(data, pos + 1)
            pos = value_start + length
        if not logs and data[value_start] == 0x0A and data[value_start + 1] == _TRACE_ID_LENGTH:
            trace_id: bytes | None = data[value_start + 2 : value_start + 18]
        else:
            trace_id = _trace_id_field(data, value_start, pos, _LOG_TRACE_ID if logs else 1)
        if trace_id is None:
            who = of_resource()
        else:
            found = cache.get(trace_id)
            if found is None:
                found = cache[trace_id] = owner(trace_id)
            who = found
        if who == run[0] and field_start == run[2]:
            run[2] = pos
            run[3] += 1
        else:
            run = [who, field_start, pos, 1]
            runs.append(run)
    for who, _, _, items in runs:
        counts[who] = counts.get(who, 0) + items
    return runs


def _trace_id_field(data: bytes, start: int, end: int, number: int) -> bytes | None:
    found = None
    for field, _, value_start, value_end in wire.fields(data, start, end):
        if field == number:
            found = data[value_start:value_end]  # the last occurrence wins, as in a protobuf parse
    return found if found is not None and len(found) == _TRACE_ID_LENGTH else None


def _build(data: bytes, entries: list[_Entry], who: int) -> bytes:
    """`who`'s request: each resource entry and scope that holds its items, headers repeated."""
    out = []
    for header, scopes in entries:
        parts = []
        for scope_header, runs in scopes:
            mine = [data[s:e] for owner, s, e, _ in runs if owner == who]
            if mine:
                parts.append(wire.length_delimited(_SCOPES, scope_header + b"".join(mine)))
        if parts:
            out.append(wire.length_delimited(wire.RESOURCE_ENTRY, header + b"".join(parts)))
    return b"".join(out)
