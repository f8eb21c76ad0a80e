"""Attribute actions on the wire: span, span-event and log-record attributes rewritten by slicing the
resource entry's bytes, with no protobuf parse of the items and no serialization.

This serves the common action lists (`WireActions.supports`): every action names an exact `key`, has no
`match` and no `fromAttribute`, and updates, deletes, hashes or redacts (never inserts). Such a list
changes an attribute only where its key is one of the actions' keys, so the work is driven by where those
keys' bytes occur in the entry's scopes (`bytes.find`, C); scopes and items whose bytes hold no occurrence
are copied as they are. To reach the attributes that hold one:

- when `wire_proof` proves (one upb parse, byte counts) that every occurrence is the key field of a
  canonical item attribute, each is read right where it was found, with no walk through the item;
- otherwise the items holding an occurrence are walked field by field (events too), so a key's bytes found
  inside a name, a value or an id lie in a field the walk steps over, never in one it reads as an attribute.

A KeyValue is read in place; when it is the canonical `0A len key 12 len value` with the key where it was
found, its key is that occurrence; any other form (fields reordered or repeated, overlong varints) is
decided by `kv.key_of`, as a parser would. Changed KeyValues, then the enclosing item, scope and entry are
re-framed with their new lengths; everything else is sliced from the original bytes. Anything the walk does
not handle (groups, a tag the attribute or event fields spell in more than one byte) raises `Unsupported`,
and the caller processes the entry with the lite schemas instead.
"""

from __future__ import annotations

import itertools
import operator

from google.protobuf import message

from otlp_agent.api.spec import AttributeActionType as Kind
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline.processors import attributes, kv, wire_proof
from otlp_agent.pipeline.processors.attributes import Action

_NONE = 1 << 62  # "no occurrence left": beyond any position
_DELETED = b"<deleted>"  # what _keyvalue returns for a KeyValue an action deletes (compared by identity)
_ITEM_HEADER = b"\x12"  # field 2, length-delimited: scope_spans / scope_logs in an entry, spans / records in
# a scope (the same number at both levels for traces and logs)
# Per signal: the item's attribute field tag, its event field tag, the event's attribute field tag (tags of
# one byte; logs have no events)
_NO_TAG = -1  # equals no byte
_TAGS = {Signal.traces: (0x4A, 0x5A, 0x1A), Signal.logs: (0x32, _NO_TAG, _NO_TAG)}


class Unsupported(Exception):
    """The entry holds an encoding this walk leaves to the lite schemas."""


class WireActions:
    """One signal's wire-level action list (see the module docstring for which lists qualify)."""

    def __init__(self, signal: Signal, actions: list[Action]) -> None:
        self.signal = signal
        self.attribute_tag, self.event_tag, self.event_attribute_tag = _TAGS[signal]
        # key -> its actions in order, each as (deletes, redacts, action)
        self.by_key: dict[bytes, list[tuple[bool, bool, Action]]] = {}
        for action in actions:
            assert action.key is not None
            step = (action.kind == Kind.delete, action.kind == Kind.redact, action)
            self.by_key.setdefault(action.key, []).append(step)
        self.keys = tuple(self.by_key)
        self.provable = all(wire_proof.provable(key) for key in self.keys)
        # Keys whose first action deletes: nothing else can happen to them.
        self.deleting = frozenset(key for key, steps in self.by_key.items() if steps[0][0])
        # Keys whose only action redacts: their string values are redacted in place.
        self.redacting = {
            key: steps[0][2] for key, steps in self.by_key.items() if len(steps) == 1 and steps[0][1]
        }

    def rewrite(self, data: bytes, start: int, end: int, redacted: dict[int, int]) -> bytes | None:
        """The resource entry whose value is data[start:end] after the actions (its new value), or None
        when nothing changed; values redacted are added to `redacted` per action index. Raises
        Unsupported (see the module docstring)."""
        try:
            scopes = [(v, e) for number, _, v, e in wire.fields(data, start, end) if number == 2]
            walk = self._direct(data, start, end, scopes) if self.provable else None
            if walk is None:
                walk = _Walk(self, data, _occurrences(data, scopes, self.keys))
                new = walk.entry(start, end) if len(walk.hits) > 1 else None  # more than the sentinel
            else:
                new = walk.result
        except (IndexError, wire.MalformedPayload, message.DecodeError) as exc:
            raise Unsupported(str(exc)) from None
        for index, values in walk.redacted.items():
            redacted[index] = redacted.get(index, 0) + values
        return new

    def _direct(self, data: bytes, start: int, end: int, scopes: list[tuple[int, int]]) -> _Walk | None:
        """The rewrite done by `_Direct` when `wire_proof` proves it may (or when no key occurs: nothing
        to do), else None."""
        hits, seen = _disjoint_occurrences(data, scopes, self.keys)
        walk = _Direct(self, data, hits)
        if len(hits) == 1:  # the sentinel alone
            return walk
        if not wire_proof.proves(self.signal, memoryview(data)[start:end], seen):
            return None
        try:
            walk.result = walk.entry(start, end)
        except _Unproven:  # an attribute's header spelled unusually: walk instead
            return None
        return walk

    @staticmethod
    def supports(signal: Signal, actions: list[Action]) -> bool:
        return signal in _TAGS and all(
            a.key is not None
            and a.match is None
            and a.source is None
            and a.kind in (Kind.update, Kind.delete, Kind.hash, Kind.redact)
            for a in actions
        )


def _occurrences(data: bytes, ranges: list[tuple[int, int]], keys: tuple[bytes, ...]) -> list[int]:
    """Sorted start positions of every occurrence of every key in the ranges of `data` (overlapping ones
    too), then _NONE."""
    found: list[int] = []
    for key in keys:
        for start, end in ranges:
            at = data.find(key, start, end)
            while at >= 0:
                found.append(at)
                at = data.find(key, at + 1, end)
    found.sort()
    found.append(_NONE)  # a sentinel: loops over occurrences need no bounds check
    return found


def _disjoint_occurrences(
    data: bytes, ranges: list[tuple[int, int]], keys: tuple[bytes, ...]
) -> tuple[list[int], dict[bytes, int]]:
    """`_occurrences` for keys without a border (`wire_proof.provable`), whose occurrences never overlap,
    and how many of each: one `split` per key and range, positions summed in C (no Python per
    occurrence)."""
    found: list[int] = []
    seen = {}
    for key in keys:
        size = len(key)
        count = 0
        for start, end in ranges:
            parts = data[start:end].split(key)
            count += len(parts) - 1
            lengths = itertools.accumulate(map(len, parts[:-1]))
            found += map(operator.add, lengths, range(start, end, size))
        seen[key] = count
    found.sort()
    found.append(_NONE)
    return found, seen


class _Walk:
    """One entry's rewrite. `hits` are the sorted key occurrences; `self.next` indexes the first one not
    yet passed, so each is looked at once whatever the nesting. The loops read field headers inline (one
    byte tags, lengths of one or two bytes) and call `_field` for anything else: they run for every field
    of every item that holds an occurrence, and a call per field would cost more than the rest."""

    def __init__(self, program: WireActions, data: bytes, hits: list[int]) -> None:
        self.program = program
        self.data = data
        self.hits = hits
        self.next = 0
        self.redacted: dict[int, int] = {}
        self.result: bytes | None = None  # what `entry` returned (set by WireActions._direct)

    def entry(self, start: int, end: int) -> bytes | None:
        """An entry's value with its scopes (field 2) that hold an occurrence rewritten."""
        data, hits = self.data, self.hits
        pieces: list[bytes] = []
        copied = pos = start
        while pos < end:
            field_start = pos
            number, value_start, pos = _field(data, pos, end)
            while hits[self.next] < value_start:
                self.next += 1
            if number == 2 and hits[self.next] < pos:
                new = self._scope(value_start, pos)
                if new is not None:
                    pieces += (data[copied:field_start], _ITEM_HEADER, _varint(len(new)), new)
                    copied = pos
        return _joined(pieces, data, copied, end)

    def _scope(self, start: int, end: int) -> bytes | None:
        """A scope's value with its items (field 2) that hold an occurrence rewritten."""
        data, hits = self.data, self.hits
        pieces: list[bytes] = []
        copied = pos = start
        hit = hits[self.next]
        while pos < end and hit < end:
            field_start = pos
            if data[pos] == 0x12 and data[pos + 1] < 0x80:
                value_start = pos + 2
                pos = value_start + data[pos + 1]
            elif data[pos] == 0x12 and data[pos + 2] < 0x80:
                value_start = pos + 3
                pos = value_start + (data[pos + 1] & 0x7F | data[pos + 2] << 7)
            else:
                number, value_start, pos = _field(data, pos, end)
                if number == 2:
                    raise Unsupported("an item's header spelled unusually")
            if hit >= pos:
                continue
            while hits[self.next] < value_start:  # occurrences in the item's header
                self.next += 1
            if hits[self.next] < pos and data[field_start] == 0x12:
                new = self._item(value_start, pos)
                if new is not None:
                    pieces += (data[copied:field_start], _ITEM_HEADER, _varint(len(new)), new)
                    copied = pos
            while hits[self.next] < pos:
                self.next += 1
            hit = hits[self.next]
        if pos > end:
            raise Unsupported("a field runs past its message")
        return _joined(pieces, data, copied, end)

    def _item(self, start: int, end: int) -> bytes | None:
        """A span's or log record's value with the attributes that hold an occurrence processed."""
        return self._attributes(start, end, self.program.attribute_tag, self.program.event_tag)

    def _attributes(self, start: int, end: int, attribute_tag: int, event_tag: int) -> bytes | None:
        """The message data[start:end] (a span, a log record or an event) with its attribute fields
        (`attribute_tag`) that hold an occurrence processed; fields tagged `event_tag` are events, whose
        attributes are processed alike."""
        data, hits = self.data, self.hits
        pieces: list[bytes] = []
        copied = pos = start
        while hits[self.next] < start:
            self.next += 1
        hit = hits[self.next]
        while pos < end and hit < end:
            field_start = pos
            tag = data[pos]
            kind = tag & 7
            if tag & 0x80:
                _multibyte_tag(data, pos, attribute_tag, event_tag)
                _, value_start, pos = _field(data, pos, end)
            elif kind == 2:
                size = data[pos + 1]
                if size < 0x80:
                    value_start = pos + 2
                else:
                    size, value_start = wire.read_varint(data, pos + 1)
                pos = value_start + size
            elif kind == 0:
                pos += 2
                while data[pos - 1] & 0x80:
                    pos += 1
            elif kind == 1:
                pos += 9
            elif kind == 5:
                pos += 5
            else:
                raise Unsupported(f"wire type {kind}")
            if hit >= pos:
                continue
            if pos > end:
                raise Unsupported("a field runs past its message")
            if tag == attribute_tag:
                new = self._keyvalue(value_start, pos, hit)
            elif tag == event_tag:
                new = self._attributes(value_start, pos, self.program.event_attribute_tag, _NO_TAG)
            else:
                new = None
            if new is not None:
                pieces.append(data[copied:field_start])
                if new is not _DELETED:
                    pieces += (_ONE_BYTE[tag], _varint(len(new)), new)
                copied = pos
            while hits[self.next] < pos:
                self.next += 1
            hit = hits[self.next]
        if pos > end:
            raise Unsupported("a field runs past its message")
        return _joined(pieces, data, copied, end)

    def _keyvalue(self, start: int, end: int, hit: int) -> bytes | None:
        """The KeyValue data[start:end] after the actions on its key: None when unchanged, _DELETED when
        deleted. In its canonical form (`0A len key 12 len value`, the key at `hit`, the value up to the
        end) the key is that occurrence; otherwise `kv.key_of` decides."""
        data = self.data
        value_tag = start + 2 + data[start + 1]
        if (
            hit == start + 2
            and data[start] == 0x0A
            and value_tag + 1 < end
            and data[value_tag] == 0x12
            and data[value_tag + 1] < 0x80
            and value_tag + 2 + data[value_tag + 1] == end
        ):
            key = data[hit:value_tag]
        else:
            key = kv.key_of(data[start:end])
        if key in self.program.deleting:
            return _DELETED
        return self._changed(key, data[start:end])

    def _changed(self, key: bytes, blob: bytes) -> bytes | None:
        """The KeyValue `blob` (whose key is `key`) after the actions on its key: None when unchanged,
        _DELETED when deleted."""
        steps = self.program.by_key.get(key)
        if steps is None:
            return None
        original = blob
        for deletes, redacts, action in steps:
            if deletes:
                return _DELETED
            new = action.changed(blob)
            if new is not None:
                blob = new
                if redacts:
                    self.redacted[action.index] = self.redacted.get(action.index, 0) + 1
        return None if blob is original else blob


class _Unproven(Exception):
    """An attribute `_Direct` reached has a header it does not read."""


class _Direct(_Walk):
    """The rewrite when `wire_proof` proved every occurrence to be the key of a canonical item attribute:
    each is read where it was found, with no walk through the items' fields, and a scope's rewritten items
    are framed with lengths computed from what changed (one join per scope). One loop over the scope's
    items and the occurrences in them: a call per occurrence would cost as much as the rest."""

    def _scope(self, start: int, end: int) -> bytes | None:
        data, hits, tag = self.data, self.hits, self.program.attribute_tag
        deleting, redacting, changed = self.program.deleting, self.program.redacting, self._changed
        redacted = self.redacted
        pieces: list[bytes] = []
        copied = pos = start
        i = self.next
        hit = hits[i]
        while hit < end:
            # The item holding `hit`: step over the scope's fields to it.
            field_start = pos
            if data[pos] != 0x12:
                _, value_start, pos = _field(data, pos, end)
                if hit < pos:
                    raise _Unproven  # proven occurrences lie in items
                continue
            size = data[pos + 1]
            if size < 0x80:
                value_start = pos + 2
            elif data[pos + 2] < 0x80:
                size, value_start = size & 0x7F | data[pos + 2] << 7, pos + 3
            else:
                raise _Unproven  # an item of 16 KiB or more
            pos = value_start + size
            if hit >= pos:
                continue
            if pos > end or hit < value_start:
                raise _Unproven
            # Its attributes at the occurrences: `grown` is how much longer the item becomes.
            mark, before = len(pieces), copied
            pieces += (data[copied:field_start], b"")  # the item's header, once its length is known
            copied = value_start
            grown = 0
            while hit < pos:
                kv_start = hit - 2  # the KeyValue: 0A len key ...
                if data[kv_start - 2] == tag:  # the field's tag and a one-byte length
                    attribute_start, kv_end = kv_start - 2, kv_start + data[kv_start - 1]
                elif data[kv_start - 3] == tag and data[kv_start - 2] & 0x80:  # a two-byte length
                    attribute_start = kv_start - 3
                    kv_end = kv_start + (data[kv_start - 2] & 0x7F | data[kv_start - 1] << 7)
                else:
                    raise _Unproven
                value_tag = hit + data[kv_start + 1]
                if (
                    value_tag + 1 < kv_end
                    and data[value_tag] == 0x12
                    and data[value_tag + 1] < 0x80
                    and value_tag + 2 + data[value_tag + 1] == kv_end
                ):
                    key = data[hit:value_tag]  # canonical: the key is the occurrence
                    redactor = redacting.get(key)
                    if (
                        redactor is not None
                        and data[value_tag + 2] == 0x0A
                        and data[value_tag + 3] + 4 == kv_end - value_tag
                    ):
                        # A string value, redacted here: its text is data[value_tag + 4:kv_end].
                        text = redactor.redact(data[value_tag + 4 : kv_end])
                        if text is not None:
                            new = attributes.string_keyvalue(data[kv_start : value_tag + 1], text)
                            redacted[redactor.index] = redacted.get(redactor.index, 0) + 1
                        else:
                            new = None
                    else:
                        new = _DELETED if key in deleting else changed(key, data[kv_start:kv_end])
                else:
                    key = kv.key_of(data[kv_start:kv_end])
                    new = _DELETED if key in deleting else changed(key, data[kv_start:kv_end])
                if new is not None:
                    pieces.append(data[copied:attribute_start])
                    grown -= kv_end - attribute_start
                    if new is not _DELETED:
                        header = _ONE_BYTE[tag] + _varint(len(new))
                        pieces += (header, new)
                        grown += len(header) + len(new)
                    copied = kv_end
                i += 1
                hit = hits[i]
            if len(pieces) > mark + 2:
                pieces[mark + 1] = _ITEM_HEADER + _varint(size + grown)
            else:  # nothing changed in this item
                del pieces[mark:]
                copied = before
        self.next = i
        return _joined(pieces, data, copied, end)


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]
_varint = wire.varint


def _joined(pieces: list[bytes], data: bytes, copied: int, end: int) -> bytes | None:
    """The rewritten message: `pieces`, then data[copied:end]; None when nothing was rewritten."""
    if not pieces:
        return None
    pieces.append(data[copied:end])
    return b"".join(pieces)


def _field(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(field number, value start, field end) of the field at `pos`."""
    tag, after = wire.read_varint(data, pos)
    kind = tag & 7
    if kind == 2:
        size, value_start = wire.read_varint(data, after)
        field_end = value_start + size
    elif kind == 0:
        value_start = after
        field_end = wire.read_varint(data, after)[1]
    elif kind in (1, 5):
        value_start = after
        field_end = after + (8 if kind == 1 else 4)
    else:
        raise Unsupported(f"wire type {kind}")
    if field_end > end:
        raise Unsupported("a field runs past its message")
    return tag >> 3, value_start, field_end


def _multibyte_tag(data: bytes, pos: int, attribute_tag: int, event_tag: int) -> None:
    """A tag longer than one byte is another field unless it spells one the walk reads (overlong)."""
    tag, _ = wire.read_varint(data, pos)
    if tag in (attribute_tag, event_tag):
        raise Unsupported("an overlong tag")
