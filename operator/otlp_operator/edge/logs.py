"""The operator's logs on stderr: JSON lines (`--log-format json`, the default) or text, both stamped with
RFC 3339 times in UTC with milliseconds (`2026-01-02T03:04:05.678Z`), like the agent's.

- json: one object per line: `time`, `level` (debug, info, warning, error, critical), `logger`, `message`,
  `object` when kopf logs about a resource (its apiVersion, kind, namespace, name and uid), `exception`
  with the traceback when there is one.
- text: `<time> <logger> [<LEVEL>] [<namespace>/<name>] <message>`, kopf's layout with the same time.

`configure` lets kopf set up its handler, levels and quiet loggers (`kopf.configure`), then gives that
handler our formatter; kopf's own JSON formatter writes microseconds and `+00:00`.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import kopf

FORMATS = ("json", "text")


def rfc3339(created: float) -> str:
    """A log record's time as RFC 3339 in UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _object(record: logging.LogRecord) -> dict[str, Any] | None:
    """The resource kopf's per-object loggers attach to a record (`k8s_ref`), if any."""
    ref = getattr(record, "k8s_ref", None)
    return dict(ref) if isinstance(ref, dict) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = _object(record)
        if ref is not None:
            entry["object"] = ref
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """kopf's text layout, with the resource as a `[namespace/name]` prefix and RFC 3339 times."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s [%(levelname)-8s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)

    def format(self, record: logging.LogRecord) -> str:
        ref = _object(record)
        if ref is None:
            return super().format(record)
        where = f"{ref['namespace']}/{ref.get('name', '')}" if ref.get("namespace") else ref.get("name", "")
        prefixed = logging.makeLogRecord({**record.__dict__, "msg": f"[{where}] {record.getMessage()}"})
        prefixed.args = None
        return super().format(prefixed)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of `--log-format` (json or text)."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: use json or text")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: str, *, verbose: bool, debug: bool) -> None:
    """Log to stderr in `log_format`, at kopf's levels (info; --verbose and --debug: everything)."""
    chosen = formatter(log_format)
    kopf.configure(verbose=verbose, debug=debug)
    for handler in logging.getLogger().handlers:
        if type(handler).__module__.startswith("kopf."):  # the handler kopf.configure just installed
            handler.setFormatter(chosen)
