"""The operator's probe endpoints, `/healthz` (liveness) and `/readyz` (readiness), and its Prometheus
`/metrics` (`otlp_operator.metrics`), on one HTTP port (`--health-port`, 8080 in the chart).

- `/healthz` answers 200 while the event loop answers: the process is alive (kubelet restarts it otherwise).
- `/readyz` answers 200 only when every check passes: the webhook server is listening with its certificate
  loaded, and (with injection) the pod webhook's caches are filled and none of their watches has been
  failing for more than `informer.STALE_AFTER` seconds. Otherwise it answers 503 and names what it waits
  for, so the webhook Service sends no review to a replica that would answer wrongly.

Readiness says nothing about which replica reconciles (kopf peering): every ready replica serves the
webhooks. The server binds the port it is given, 0 included, and reports the port it got (`port`, and a
log line), so tests never probe for a free port. aiohttp, as kopf's own probe server uses.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable

import aiohttp.web

_log = logging.getLogger(__name__)

#: A named readiness check: None when ready, else what it waits for.
Check = Callable[[], str | None]
#: The Prometheus text exposition of the operator's metrics.
Exposition = Callable[[], bytes]
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclasses.dataclass
class HealthServer:
    """Serves `/healthz`, `/readyz` and `/metrics` on `host:port` (port 0: any free port, read back into
    `port`)."""

    host: str
    port: int
    checks: list[Check] = dataclasses.field(default_factory=list)
    metrics: Exposition | None = None
    _runner: aiohttp.web.AppRunner | None = None

    def waiting_for(self) -> list[str]:
        return [why for check in self.checks if (why := check()) is not None]

    async def start(self) -> None:
        app = aiohttp.web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics)
        self._runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family)
        self.port = int(sock.getsockname()[1])
        await aiohttp.web.SockSite(self._runner, sock).start()
        _log.info("probes at http://%s:%d/healthz and /readyz, metrics at /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ok\n")

    async def _metrics(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        assert self.metrics is not None
        return aiohttp.web.Response(body=self.metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _readyz(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        waiting = self.waiting_for()
        if waiting:
            return aiohttp.web.Response(status=503, text="waiting for: " + "; ".join(waiting) + "\n")
        return aiohttp.web.Response(text="ready\n")
