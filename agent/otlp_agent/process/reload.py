"""Config reload: notice that the config file changed, validate it, hand the new pipeline to the agent, and
remember what runs so the agent can say so.

The file is polled (its content hash, every `interval` seconds) rather than watched with inotify: a
Kubernetes ConfigMap volume changes by swapping a symlink, which file watches miss, and reading one small
file a second costs nothing. A file that does not validate, or that the agent cannot run (`apply` says
why), is rejected with one log line and counted in `otlp_agent_config_reloads_total{outcome="rejected"}`;
the running pipeline goes on. A file that goes back to content already seen is not reloaded twice.

What runs is reported (`report()`, served as JSON at `/config` on the telemetry port): the SHA-256 of the
config file content the running pipeline was built from, since when, and the outcome of the last reload
(applied or rejected, with the reason). The operator reads it to tell, in the pipeline's status, which
agents run the config it published; the hash is of the file's bytes, so it matches the hash of the text
the operator wrote into the ConfigMap (the operator shows its first 10 hex digits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from otlp_agent.api import loader
from otlp_agent.api.problems import SpecError
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: Seconds between two looks at the config file.
POLL_INTERVAL = 1.0
#: The start of a reason kept in the report (the log has all of it).
_REASON_LIMIT = 1024


def digest(path: pathlib.Path) -> str | None:
    """The content hash of `path`, or None while it cannot be read (e.g. in the middle of a swap)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One reload: the content it was for, applied or rejected, when, and why it was rejected."""

    sha256: str
    applied: bool
    at: float  # Unix time
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        found = {"sha256": self.sha256, "outcome": "applied" if self.applied else "rejected"}
        return {**found, "at": _timestamp(self.at), "reason": self.reason}


class ConfigWatcher:
    """Calls `apply(pipeline)` with each new valid content of the config file; `apply` returns None when
    the new pipeline runs, else why it cannot run (the old one goes on)."""

    def __init__(
        self,
        path: pathlib.Path,
        apply: Callable[[loader.OTLPPipeline], Awaitable[str | None]],
        metrics: AgentMetrics,
        interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.interval = interval
        self._apply = apply
        self._metrics = metrics
        self._clock = clock
        self._seen = digest(path)  # the content the agent started from
        self.running = self._seen
        self.running_since = clock()
        self.last: Outcome | None = None
        metrics.config_running(self.running)

    def report(self) -> dict[str, Any]:
        """What runs and how the last reload went (JSON-ready)."""
        return {
            "sha256": self.running,
            "since": _timestamp(self.running_since),
            "lastReload": None if self.last is None else self.last.as_json(),
        }

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception as exc:  # a failed reload must not end the watching
                logs.event("config_reload_failed", f"reloading {self.path} failed: {exc!r}")
                if self._seen is not None:
                    self._record(self._seen, f"reloading failed: {exc!r}")

    async def check(self) -> None:
        """Look at the file once; reload if its content changed."""
        current = digest(self.path)
        if current is None or current == self._seen:
            return
        self._seen = current
        try:
            pipeline = loader.load_runnable(self.path)
        except SpecError as exc:
            reason = "; ".join(str(problem) for problem in exc.problems)
            logs.event(
                "config_rejected",
                f"config {self.path} changed but is invalid; keeping the running config: {reason}",
            )
            self._record(current, f"invalid: {reason}")
            return
        self._record(current, await self._apply(pipeline))

    def _record(self, sha256: str, refusal: str | None) -> None:
        now = self._clock()
        self._metrics.reloads.labels("applied" if refusal is None else "rejected").inc()
        self.last = Outcome(sha256, refusal is None, now, (refusal or "")[:_REASON_LIMIT])
        if refusal is None:
            self.running, self.running_since = sha256, now
            self._metrics.config_running(sha256)
