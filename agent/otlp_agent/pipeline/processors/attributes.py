"""Attribute actions (`processors.resource` and `processors.attributes`) on a list of serialized KeyValues.

The same engine serves resources (the Resource's attributes) and items (span, span event, log record and
data point attributes): an item's attributes arrive as the `repeated bytes` of a lite message (see `lite`).
`Attributes` finds keys with byte searches over the joined KeyValues (C), reading only the KeyValues where
a key's bytes occur, and only what changed is written back: a replaced KeyValue is one
assignment, a deleted one one deletion. No KeyValue or AnyValue object is built.

Actions run in order: insert (where missing), update (where present), upsert, delete, hash (SHA-256 hex of
`kv.hash_input`), redact (every RE2 match in a string value replaced; each value changed is counted).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1 import common_pb2

from otlp_agent.api import patterns, spec
from otlp_agent.api.spec import AttributeActionType as Kind
from otlp_agent.otlp import wire
from otlp_agent.pipeline.processors import conditions, kv

#: Key-regex decisions remembered per action; the cache starts over when full.
KEY_CACHE_SIZE = 4096


class Attributes:
    """A working copy of one repeated-bytes attribute field: its blobs and where each came from.

    Keys are found without a Python loop over the attributes: the blobs are joined (C), the key's bytes
    searched in the join (C), and only the blobs where they occur are read (`kv.key_of`). A blob whose
    bytes do not contain a key cannot have it, so this is exact.
    """

    def __init__(self, container: Any) -> None:
        self.container = container
        self.original = list(container)
        self.blobs = list(self.original)
        self.origin: list[int | None] = list(range(len(self.blobs)))
        self._joined: bytes | None = None
        self._ends: list[int] = []
        self._replaced: dict[int, bytes] = {}
        self._deleted: list[int] = []
        self._appended = False

    def indexes(self, key: bytes) -> list[int]:
        """Positions of the attributes whose key is `key`."""
        if self._joined is None:
            self._joined = b"".join(self.blobs)
            self._ends = list(itertools.accumulate(map(len, self.blobs)))
        joined, ends = self._joined, self._ends
        found: list[int] = []
        at = joined.find(key)
        while at >= 0:
            i = bisect.bisect_right(ends, at)
            if kv.key_of(self.blobs[i]) == key:
                found.append(i)
            at = joined.find(key, ends[i])  # this blob is decided: go on after it
        return found

    def keys(self) -> list[bytes]:
        return [kv.key_of(blob) for blob in self.blobs]

    def value(self, key: bytes) -> bytes | None:
        found = self.indexes(key)
        return kv.split(self.blobs[found[0]])[1] if found else None

    def replace(self, i: int, blob: bytes) -> None:
        self.blobs[i] = blob
        origin = self.origin[i]
        if origin is not None:
            self._replaced[origin] = blob
        self._joined = None

    def delete(self, i: int) -> None:
        origin = self.origin[i]
        if origin is not None:
            self._deleted.append(origin)
            self._replaced.pop(origin, None)
        del self.blobs[i], self.origin[i]
        self._joined = None

    def append(self, blob: bytes) -> None:
        self.blobs.append(blob)
        self.origin.append(None)
        self._appended = True
        self._joined = None

    def write_back(self) -> None:
        """Apply the changes to the field with one operation per change (order: the originals that are
        left, then the appended ones)."""
        container = self.container
        for origin, blob in self._replaced.items():
            container[origin] = blob
        for origin in sorted(self._deleted, reverse=True):
            del container[origin]
        if self._appended:
            container.extend(
                blob for blob, origin in zip(self.blobs, self.origin, strict=True) if origin is None
            )


class Action:
    """One compiled action; `index` is its place in the spec's list (the `action` metric label)."""

    def __init__(
        self, action: spec.AttributeAction, index: int, match: conditions.CompiledMatch | None
    ) -> None:
        self.index = index
        self.kind = action.action
        self.match = match
        self.key = action.key.encode() if action.key is not None else None
        self.key_pattern = patterns.compile_pattern(action.key_regex or "")
        self.value = kv.string_value(action.value.encode()) if action.value is not None else None
        self.source = action.from_attribute.encode() if action.from_attribute is not None else None
        self.pattern = patterns.compile_pattern(action.regex or "")
        self.replacement = action.replacement.encode()
        self._selected: dict[bytes, bool] = {}

    def _selects(self, key: bytes) -> bool:
        decided = self._selected.get(key)
        if decided is None:
            decided = patterns.fullmatch(self.key_pattern, key)
            if len(self._selected) >= KEY_CACHE_SIZE:
                self._selected.clear()
            self._selected[key] = decided
        return decided

    def _indexes(self, attributes: Attributes) -> list[int]:
        if self.key is not None:
            return attributes.indexes(self.key)
        return [i for i, key in enumerate(attributes.keys()) if self._selects(key)]

    def run(self, attributes: Attributes) -> int:
        """Apply to `attributes`; returns the number of values redacted, or -1 if nothing changed."""
        if self.kind in (Kind.insert, Kind.update, Kind.upsert):
            return self._assign(attributes)
        indexes = self._indexes(attributes)
        if not indexes:
            return -1
        if self.kind == Kind.delete:
            for i in reversed(indexes):
                attributes.delete(i)
            return 0
        if self.kind == Kind.hash:
            for i in indexes:
                value = kv.split(attributes.blobs[i])[1]
                digest = hashlib.sha256(kv.hash_input(value)).hexdigest().encode()
                key = kv.key_of(attributes.blobs[i])
                attributes.replace(i, kv.build(key, kv.string_value(digest)))
            return 0
        return self._redact(attributes, indexes)

    def _assign(self, attributes: Attributes) -> int:
        assert self.key is not None
        value = self.value if self.source is None else attributes.value(self.source)
        if value is None:
            return -1  # fromAttribute names an attribute this item does not have
        present = attributes.indexes(self.key)
        if present and self.kind != Kind.insert:
            new = kv.build(self.key, value)
            for i in present:
                attributes.replace(i, new)
            return 0
        if not present and self.kind != Kind.update:
            attributes.append(kv.build(self.key, value))
            return 0
        return -1

    def _redact(self, attributes: Attributes, indexes: list[int]) -> int:
        redacted = 0
        for i in indexes:
            new = self.changed(attributes.blobs[i])
            if new is not None:
                attributes.replace(i, new)
                redacted += 1
        return redacted if redacted else -1

    def changed(self, blob: bytes) -> bytes | None:
        """The KeyValue `blob` after this action (update, hash or redact); None if unchanged."""
        if self.kind == Kind.redact:
            return self._redacted(blob)
        parts = kv.canonical(blob)
        if parts is None:
            return self._changed_parsed(blob)
        key, value = parts
        if self.kind == Kind.update:
            return kv.build(key, self.value or b"")
        digest = hashlib.sha256(kv.hash_input(value)).hexdigest().encode()
        return kv.build(key, kv.string_value(digest))

    def _redacted(self, blob: bytes) -> bytes | None:
        """`changed` for redact, reading the common form (`0A len key 12 len 0A len text`) in place."""
        size = len(blob)
        value_tag = 2 + blob[1] if size > 2 and blob[0] == 0x0A and blob[1] < 0x80 else size
        if value_tag + 4 <= size and blob[value_tag] == 0x12 and blob[value_tag + 2] == 0x0A:
            value_length, text_length = blob[value_tag + 1], blob[value_tag + 3]
            start = value_tag + 4
            if text_length < 0x80 and value_length == text_length + 2 and start + text_length == size:
                new = self.redact(blob[start:])
                return None if new is None else string_keyvalue(blob[: value_tag + 1], new)
        return self._changed_parsed(blob)

    def _changed_parsed(self, blob: bytes) -> bytes | None:
        """`changed` for KeyValues in any other form (fields repeated, reordered, unknown ones): done on
        the parsed message, so what this action does not touch (unknown fields included) stays."""
        try:
            message = common_pb2.KeyValue.FromString(blob)
        except DecodeError:  # receivers validated the request; never crash on it anyway
            return None
        value = message.value
        if self.kind == Kind.redact:
            if value.WhichOneof("value") != "string_value":
                return None
            new = self.redact(value.string_value.encode())
            if new is None:
                return None
            value.string_value = new.decode()
        elif self.kind == Kind.update:
            value.Clear()
            value.MergeFromString(self.value or b"")
        else:
            digest = hashlib.sha256(kv.hash_input(value.SerializeToString())).hexdigest()
            value.Clear()
            value.string_value = digest
        serialized: bytes = message.SerializeToString()
        return serialized

    def redact(self, text: bytes) -> bytes | None:
        """`text` with every match of the redact regex replaced; None when nothing matched."""
        found = patterns.find_all(self.pattern, text)
        if not found:
            return None
        if len(found) == 1:
            ((start, end),) = found
            return text[:start] + self.replacement + text[end:]
        parts, last = [], 0
        for start, end in found:
            parts += [text[last:start], self.replacement]
            last = end
        parts.append(text[last:])
        return b"".join(parts)


def string_keyvalue(key_field: bytes, text: bytes) -> bytes:
    """A serialized KeyValue from its key's field and the value's tag (`0A len key 12`) and a string."""
    length = wire.varint(len(text))
    return b"".join((key_field, wire.varint(1 + len(length) + len(text)), b"\x0a", length, text))


class ActionList:
    """The actions that apply to one signal, in order."""

    def __init__(self, actions: list[Action]) -> None:
        self.actions = actions
        self.matched = any(action.match is not None for action in actions)
        self.simple = all(
            a.key is not None
            and a.match is None
            and a.source is None
            and a.kind not in (Kind.insert, Kind.upsert)
            for a in actions
        )
        # Keys whose absence from an entry's bytes proves no action can change it (None: no such proof).
        self.needles: tuple[bytes, ...] | None = (
            tuple(a.key for a in actions if a.key is not None)
            if all(a.key is not None and a.kind not in (Kind.insert, Kind.upsert) for a in actions)
            else None
        )

    def could_change(self, entry: bytes) -> bool:
        """False only when no action can change anything in these bytes (a key they all need is absent)."""
        return self.needles is None or any(needle in entry for needle in self.needles)

    def active(self, ctx: conditions.Context) -> list[Action]:
        """The actions whose match holds for `ctx` (all of them when none has a match)."""
        if not self.matched:
            return self.actions
        return [action for action in self.actions if action.match is None or action.match.holds(ctx)]

    @staticmethod
    def run(attributes: Attributes, active: list[Action], redacted: dict[int, int]) -> bool:
        """Run `active` actions in order; True when something changed. Values redacted are added to
        `redacted` per action index."""
        changed = False
        for action in active:
            outcome = action.run(attributes)
            if outcome > 0:
                redacted[action.index] = redacted.get(action.index, 0) + outcome
            changed = changed or outcome >= 0
        return changed

    def apply(self, container: Any, active: list[Action], redacted: dict[int, int]) -> None:
        """Run `active` actions on a repeated-bytes attribute field, writing back what changed."""
        if not active or (not len(container) and self.needles is not None):
            return
        if active is self.actions and self.simple:
            self._apply_simple(container, redacted)
            return
        attributes = Attributes(container)
        if self.run(attributes, active, redacted):
            attributes.write_back()

    def _apply_simple(self, container: Any, redacted: dict[int, int]) -> None:
        """The common case in one pass: exact keys, no match, no insertion. Keys never change here, so the
        positions found in the join of the original KeyValues stay right for every action."""
        blobs = list(container)
        joined = b"".join(blobs)
        ends: list[int] | None = None
        deleted: set[int] = set()
        replaced: dict[int, bytes] = {}
        for action in self.actions:
            key = action.key or b""
            at = joined.find(key)
            while at >= 0:
                if ends is None:
                    ends = list(itertools.accumulate(map(len, blobs)))
                i = bisect.bisect_right(ends, at)
                if i not in deleted and kv.key_of(blobs[i]) == key:
                    if action.kind == Kind.delete:
                        deleted.add(i)
                    else:
                        new = action.changed(blobs[i])
                        if new is not None:
                            blobs[i] = replaced[i] = new
                            if action.kind == Kind.redact:
                                redacted[action.index] = redacted.get(action.index, 0) + 1
                at = joined.find(key, ends[i])
        for i, blob in replaced.items():
            if i not in deleted:
                container[i] = blob
        for i in sorted(deleted, reverse=True):
            del container[i]
