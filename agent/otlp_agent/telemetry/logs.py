"""JSON logs, rate-limited per event kind so a flood of identical failures costs one line per interval.

One JSON object per line on stderr: `time` (RFC 3339, UTC, milliseconds: `2026-01-02T03:04:05.678Z`),
`level`, `message`, then the event's own fields.

C libraries write to file descriptor 2 themselves: grpc core logs a line per failed TLS handshake or bad
HPACK header, and any client can cause those. `route_native_stderr` (called by `otlp-agent run` only)
points descriptor 2 at a pipe, keeps the real stderr for the agent's own JSON lines (and Python's
tracebacks), and turns every line read from the pipe into the rate-limited event `native_log` (one JSON line
per interval, with the count suppressed meanwhile); `native_lines` counts them all for /metrics.
"""

from __future__ import annotations

import datetime
import io
import logging
import os
import sys
import threading
import time
from typing import Any

import orjson

_LOGGER = logging.getLogger("otlp_agent")
_INTERVAL = 10.0  # seconds between two lines of the same event kind
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_NATIVE_LINE_MAX = 1000  # characters of a C library's line kept in the JSON event
_native_lines = 0


def rfc3339(created: float) -> str:
    """A log record's time as RFC 3339 in UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z."""
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "info") -> None:
    """Send the agent's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(level.upper())
    _LOGGER.propagate = False


def route_native_stderr() -> None:
    """Send what C libraries write to descriptor 2 through the rate-limited JSON log (see module doc)."""
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w"), line_buffering=True, errors="backslashreplace")
    for handler in _LOGGER.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    threading.Thread(target=_pump, args=(read_end,), name="native-stderr", daemon=True).start()


def native_lines() -> int:
    """Lines C libraries wrote to stderr since the start (each one logged or counted as suppressed)."""
    return _native_lines


def _pump(read_end: int) -> None:
    """Read the pipe for as long as the process lives: a full pipe would block grpc's own threads."""
    global _native_lines
    with open(read_end, "rb") as pipe:
        for raw in pipe:
            _native_lines += 1
            line = raw.decode("utf-8", "replace").strip()[:_NATIVE_LINE_MAX]
            event("native_log", line, source="stderr")


def info(message: str, **fields: Any) -> None:
    _LOGGER.info(message, extra={"fields": fields})


def event(kind: str, message: str, level: int = logging.WARNING, **fields: Any) -> None:
    """Log `message` unless an event of the same `kind` was logged in the last interval."""
    now = time.monotonic()
    if now - _last_logged.get(kind, -_INTERVAL) < _INTERVAL:
        _suppressed[kind] = _suppressed.get(kind, 0) + 1
        return
    _last_logged[kind] = now
    suppressed = _suppressed.pop(kind, 0)
    if suppressed:
        fields["suppressed_since_last"] = suppressed
    _LOGGER.log(level, message, extra={"fields": {"event": kind, **fields}})
