"""The regex engine of the processors: RE2 (the `google-re2` wheel), compiled once, bounded.

Processor regexes run against what clients send, so a backtracking engine (Python's `re`) would let one
crafted value (or a pattern like `(a+)+$`) hold the event loop for minutes. RE2 runs in time linear in the
input for every pattern it accepts, and refuses what cannot be run that way (backreferences, lookaround).
It is also the syntax of the OpenTelemetry Collector (Go regexp) and of Kubernetes CRD patterns, so users'
patterns mean the same thing here. Each compiled program is capped at `MAX_PROGRAM_BYTES` of memory; a
pattern that needs more is refused at validation, never at run time.

Patterns are compiled for UTF-8 bytes: the processors match on the bytes of the wire format (no decoding).
"""

from __future__ import annotations

import functools

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
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled pattern (bytes, UTF-8); raises PatternError with RE2's reason."""
    try:
        return re2.compile(pattern.encode(), _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"not a valid RE2 pattern: {reason}") from None


def problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None."""
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return None
