"""JSON logs, rate-limited per event kind so a flood of identical failures costs one line per interval.

One JSON object per line on stderr: `time` (RFC 3339, UTC, milliseconds: `2026-01-02T03:04:05.678Z`),
`level`, `message`, then the event's own fields.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any

import orjson

_LOGGER = logging.getLogger("otlp_agent")
_INTERVAL = 10.0  # seconds between two lines of the same event kind
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}


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
