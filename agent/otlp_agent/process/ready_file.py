"""The ready file of `otlp-agent run --ready-file PATH`: how a parent process learns that the agent is ready
and on which ports it listens (the ports the OS picked, with `--any-free-port`).

Its content is one JSON object, `{"pid": 1234, "ports": {"grpc": 4317, "http": 4318, "telemetry": 8888}}`
(`null` for a receiver that is off). It is written once every listener is up and written again when a
config reload moves a listener; each write replaces the file in one rename, so a reader never sees half of
one. It is removed when the agent stops being ready (shutdown). A file left behind by a killed agent is
stale: a parent that waits for the file removes it before starting the agent.
"""

from __future__ import annotations

import json
import os
import pathlib


def write(path: pathlib.Path, ports: dict[str, int | None]) -> None:
    """Replace `path` with the agent's pid and `ports` (OSError if the folder is not writable)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"pid": os.getpid(), "ports": ports}) + "\n", encoding="utf-8")
    os.replace(partial, path)


def remove(path: pathlib.Path) -> None:
    path.unlink(missing_ok=True)
