"""Attribute actions (`processors.resource` and `processors.attributes`) on a list of serialized KeyValues.

The same engine serves resources (the Resource's attributes) and items (span, span event, log record and
data point attributes): an item's attributes arrive as the `repeated bytes` of a lite message (see `lite`),
each action finds its keys with byte comparisons (`kv.split` reads only blobs that contain the key's bytes)
and rebuilds only the KeyValues it changes. The list is written back only when an action changed it.

Actions run in order: insert (where missing), update (where present), upsert, delete, hash (SHA-256 hex of
`kv.hash_input`), redact (every RE2 match in a string value replaced; each value changed is counted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from otlp_agent.api import patterns, spec
from otlp_agent.api.spec import AttributeActionType as Kind
from otlp_agent.pipeline.processors import conditions, kv

#: Key-regex decisions remembered per action; the cache starts over when full.
KEY_CACHE_SIZE = 4096


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

    def selects(self, key: bytes) -> bool:
        if self.key is not None:
            return key == self.key
        decided = self._selected.get(key)
        if decided is None:
            decided = self.key_pattern.fullmatch(key) is not None
            if len(self._selected) >= KEY_CACHE_SIZE:
                self._selected.clear()
            self._selected[key] = decided
        return decided

    def _indexes(self, blobs: list[bytes]) -> list[int]:
        if self.key is not None:
            key = self.key
            return [i for i, blob in enumerate(blobs) if key in blob and kv.split(blob)[0] == key]
        return [i for i, blob in enumerate(blobs) if self.selects(kv.split(blob)[0])]

    def run(self, blobs: list[bytes]) -> int:
        """Apply to `blobs` in place; returns the number of values redacted, or -1 if nothing changed."""
        if self.kind in (Kind.insert, Kind.update, Kind.upsert):
            return self._assign(blobs)
        indexes = self._indexes(blobs)
        if not indexes:
            return -1
        if self.kind == Kind.delete:
            for i in reversed(indexes):
                del blobs[i]
            return 0
        if self.kind == Kind.hash:
            for i in indexes:
                key, value = kv.split(blobs[i])
                digest = hashlib.sha256(kv.hash_input(value)).hexdigest().encode()
                blobs[i] = kv.build(key, kv.string_value(digest))
            return 0
        return self._redact(blobs, indexes)

    def _assign(self, blobs: list[bytes]) -> int:
        assert self.key is not None
        value = self.value if self.source is None else conditions.lookup(blobs, self.source)
        if value is None:
            return -1  # fromAttribute names an attribute this item does not have
        present = self._indexes(blobs)
        if present and self.kind != Kind.insert:
            new = kv.build(self.key, value)
            for i in present:
                blobs[i] = new
            return 0
        if not present and self.kind != Kind.update:
            blobs.append(kv.build(self.key, value))
            return 0
        return -1

    def _redact(self, blobs: list[bytes], indexes: list[int]) -> int:
        redacted = 0
        for i in indexes:
            key, value = kv.split(blobs[i])
            text = kv.string_of(value)
            if text is None:
                continue
            found = [(m.start(), m.end()) for m in self.pattern.finditer(text)]
            if not found:
                continue
            parts, last = [], 0
            for start, end in found:
                parts += [text[last:start], self.replacement]
                last = end
            parts.append(text[last:])
            blobs[i] = kv.build(key, kv.string_value(b"".join(parts)))
            redacted += 1
        return redacted if redacted else -1


Redacted = Callable[[int, int], None]


class ActionList:
    """The actions that apply to one signal, in order; `redacted(action index, values)` counts redactions."""

    def __init__(self, actions: list[Action], redacted: Redacted) -> None:
        self.actions = actions
        self.redacted = redacted
        self.level = max((a.match.level for a in actions if a.match is not None), default=conditions.RESOURCE)
        # Keys whose absence from an entry's bytes proves no action can change it (None: no such proof).
        self.needles: tuple[bytes, ...] | None = (
            tuple(a.key for a in actions if a.key is not None)
            if all(a.key is not None and a.kind not in (Kind.insert, Kind.upsert) for a in actions)
            else None
        )

    def could_change(self, entry: bytes) -> bool:
        """False only when no action can change anything in these bytes (a key they all need is absent)."""
        return self.needles is None or any(needle in entry for needle in self.needles)

    def apply(self, container: Any, ctx: conditions.Context | None) -> bool:
        """Run every action on a repeated-bytes attribute field; True when it was rewritten."""
        blobs = list(container)
        changed = False
        for action in self.actions:
            if action.match is not None and (ctx is None or not action.match.holds(ctx)):
                continue
            outcome = action.run(blobs)
            if outcome > 0:
                self.redacted(action.index, outcome)
            changed = changed or outcome >= 0
        if changed:
            del container[:]
            container.extend(blobs)
        return changed
