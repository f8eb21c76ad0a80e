"""A proof, at C speed, that every occurrence of some keys' bytes in a resource entry's scopes is the key of
an item attribute (a span's or a log record's) written in canonical form: then the attribute actions can
go straight to those KeyValues without walking the items' other fields (see `wire_actions`).

One upb parse with a *flat* schema gives every item attribute of the entry in one list: a scope and an item
are declared as singular messages, and a singular message sent many times is merged, its repeated fields
concatenated, so all scopes' items' attributes arrive as one `repeated bytes` (each KeyValue verbatim).
Joined with a separator byte 0xFF (never in UTF-8, so never in a key; the proof is off when a KeyValue
holds one), byte counts (C) then decide, for each key K and its canonical key field P = `0A len K`:

- occurrences of K in the scopes' bytes == occurrences of K in the attribute list: each KeyValue sits
  verbatim in the entry, so equality means every occurrence lies inside an item attribute (none in a
  name, an id, an event's or a link's attribute, a scope's attributes);
- occurrences of K in the list == KeyValues starting with P: so each lies right after a KeyValue's `0A len`,
  the key field itself, and no KeyValue holds K anywhere else.

Counts equal occurrences only when occurrences cannot overlap, so keys with a border (a proper prefix that
is also a suffix, "abab") and keys of 128 bytes or more are left to the walk.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from otlp_agent.api.spec import Signal

SEPARATOR = b"\xff"
_F = descriptor_pb2.FieldDescriptorProto
# Per signal: the item's attribute field number (Span.attributes = 9, LogRecord.attributes = 6). Entry,
# scope and item fields are 2 at both levels for both signals.
_ATTRIBUTES = {Signal.traces: 9, Signal.logs: 6}


def _classes() -> dict[Signal, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="otlp_agent_flat.proto", package="flat", syntax="proto3")
    found = {}
    for signal, number in _ATTRIBUTES.items():
        prefix = signal.value.capitalize()
        item = file.message_type.add(name=f"{prefix}Item")
        item.field.add(name="attributes", number=number, label=_F.LABEL_REPEATED, type=_F.TYPE_BYTES)
        for name, child in ((f"{prefix}Scope", f"{prefix}Item"), (f"{prefix}Entry", f"{prefix}Scope")):
            message = file.message_type.add(name=name)
            message.field.add(
                name="child",
                number=2,
                label=_F.LABEL_OPTIONAL,
                type=_F.TYPE_MESSAGE,
                type_name=f".flat.{child}",
            )
        found[signal] = f"flat.{prefix}Entry"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {s: message_factory.GetMessageClass(pool.FindMessageTypeByName(n)) for s, n in found.items()}


_FLAT = _classes()


def provable(key: bytes) -> bool:
    """Whether counts decide for this key: shorter than 128 bytes, no 0xFF, no border."""
    return (
        len(key) < 0x80 and SEPARATOR not in key and not any(key[:n] == key[-n:] for n in range(1, len(key)))
    )


def proves(signal: Signal, entry: bytes | memoryview, seen: dict[bytes, int]) -> bool:
    """Whether every occurrence of each key in the entry's scopes (`seen`: key -> how many) is the key field
    of a canonical item attribute. `entry` is the value of a resource entry; every key is `provable`."""
    attributes = _FLAT[signal].FromString(entry).child.child.attributes
    joined = SEPARATOR.join(attributes)
    if joined.count(SEPARATOR) != len(attributes) - 1:
        return False  # a KeyValue holds the separator byte
    for key, count in seen.items():
        inside = joined.count(key)
        field = b"\x0a" + bytes((len(key),)) + key
        if inside != count or joined.count(SEPARATOR + field) + joined.startswith(field) != inside:
            return False
    return True
