"""The regex engine of the processors: RE2 (the `google-re2` wheel), compiled once, bounded.

Processor regexes run against what clients send, so a backtracking engine (Python's `re`) would let one
crafted value (or a pattern like `(a+)+$`) hold the event loop for minutes. RE2 runs in time linear in the
input for every pattern it accepts, and refuses what cannot be run that way (backreferences, lookaround).
It is also the syntax of the OpenTelemetry Collector (Go regexp) and of Kubernetes CRD patterns, so users'
patterns mean the same thing here. Each compiled program is capped at `MAX_PROGRAM_BYTES` of memory; a
pattern that needs more is refused at validation, never at run time.

Patterns are compiled for UTF-8 bytes: the processors match on the bytes of the wire format (no decoding).
`fullmatch` and `find_all` call the compiled program directly (the wheel's `_regexp.Match`, one C call per
match): its Python-level `finditer` costs several times more per value, which matters once per attribute.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

#: Memory RE2 may use for one compiled pattern (its default is 8 MiB; a larger need is refused).
MAX_PROGRAM_BYTES = 4 * 1024 * 1024


class PatternError(ValueError):
    """A pattern RE2 cannot compile within the bounds."""


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    return options


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (bytes, UTF-8); raises PatternError with RE2's reason."""
    try:
        return re2.compile(pattern.encode(), _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"not a valid RE2 pattern: {reason}") from None


_UNANCHORED = re2._Anchor.UNANCHORED
_BOTH = re2._Anchor.ANCHOR_BOTH


def fullmatch(pattern: Any, text: bytes) -> bool:
    """Whether `pattern` (from compile_pattern) matches the whole of `text`."""
    return bool(pattern._regexp.Match(_BOTH, text, 0, len(text))[0][0] >= 0)


def find_all(pattern: Any, text: bytes) -> list[tuple[int, int]]:
    """(start, end) of every non-empty, non-overlapping match in `text`, left to right (empty matches,
    which patterns such as `x*` or `$` make, replace nothing)."""
    regexp, end = pattern._regexp, len(text)
    found: list[tuple[int, int]] = []
    pos = 0
    while pos < end:
        start, stop = regexp.Match(_UNANCHORED, text, pos, end)[0]
        if start < 0:
            break
        if stop > start:
            found.append((start, stop))
            pos = stop
            continue
        pos = stop + 1  # an empty match: step over one UTF-8 character and look again
        while pos < end and text[pos] & 0xC0 == 0x80:
            pos += 1
    return found


def problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None."""
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return None
