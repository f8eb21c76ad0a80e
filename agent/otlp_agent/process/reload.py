"""Config reload: notice that the config file changed, validate it, and hand the new pipeline to the agent.

The file is polled (its content hash, every `interval` seconds) rather than watched with inotify: a
Kubernetes ConfigMap volume changes by swapping a symlink, which file watches miss, and reading one small
file a second costs nothing. A file that does not validate is rejected with one log line listing its
problems and counted in `otlp_agent_config_reloads_total{outcome="rejected"}`; the running pipeline goes
on. A file that goes back to content already seen is not reloaded twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
from collections.abc import Awaitable, Callable

from otlp_agent.api import loader
from otlp_agent.api.problems import SpecError
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: Seconds between two looks at the config file.
POLL_INTERVAL = 1.0


def digest(path: pathlib.Path) -> str | None:
    """The content hash of `path`, or None while it cannot be read (e.g. in the middle of a swap)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Calls `apply(pipeline)` with each new valid content of the config file."""

    def __init__(
        self,
        path: pathlib.Path,
        apply: Callable[[loader.OTLPPipeline], Awaitable[bool]],
        metrics: AgentMetrics,
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.path = path
        self.interval = interval
        self._apply = apply
        self._metrics = metrics
        self._seen = digest(path)  # the content the agent started from

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception as exc:  # a failed reload must not end the watching
                logs.event("config_reload_failed", f"reloading {self.path} failed: {exc!r}")

    async def check(self) -> None:
        """Look at the file once; reload if its content changed."""
        current = digest(self.path)
        if current is None or current == self._seen:
            return
        self._seen = current
        try:
            pipeline = loader.load_runnable(self.path)
        except SpecError as exc:
            self._metrics.reloads.labels("rejected").inc()
            logs.event(
                "config_rejected",
                f"config {self.path} changed but is invalid; keeping the running config: "
                + "; ".join(str(problem) for problem in exc.problems),
            )
            return
        applied = await self._apply(pipeline)
        self._metrics.reloads.labels("applied" if applied else "rejected").inc()
