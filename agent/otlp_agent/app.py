"""The agent process: wires receivers, pipeline and exporters, serves self-telemetry, and shuts down cleanly.

Start order is consumers first (exporters), then producers (receivers), then readiness. On stop: readiness
off, listeners closed, batchers flushed, queues drained until the grace deadline, the rest counted.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from otlp_agent import config, logs
from otlp_agent.exporters.result import Transport
from otlp_agent.metrics import AgentMetrics
from otlp_agent.pipeline import Pipeline
from otlp_agent.receivers.grpc_receiver import GrpcReceiver
from otlp_agent.receivers.http_receiver import HttpReceiver

#: Requests in progress when a listener stops get this long to finish (within the grace period).
_LISTENER_STOP_GRACE = 2.0


class Agent:
    """One running pipeline."""

    def __init__(
        self,
        pipeline: config.Pipeline,
        *,
        host: str = "0.0.0.0",
        transports: dict[str, Transport] | None = None,
    ) -> None:
        self.config = pipeline
        self.spec = pipeline.spec
        self.host = host
        self.metrics = AgentMetrics()
        self.pipeline = Pipeline(self.spec, self.metrics, transports)
        otlp = self.spec.receivers.otlp
        self.grpc = GrpcReceiver(otlp.grpc, host, self.pipeline, self.metrics) if otlp.grpc.enabled else None
        stop_grace = min(_LISTENER_STOP_GRACE, self.spec.lifecycle.shutdown_grace_period)
        self.http = (
            HttpReceiver(otlp.http, host, self.pipeline, self.metrics, stop_grace)
            if otlp.http.enabled
            else None
        )
        self.ready = False
        self._telemetry: web.AppRunner | None = None

    async def start(self) -> None:
        await self._start_telemetry()
        self.pipeline.start()
        if self.grpc:
            await self.grpc.start()
        if self.http:
            await self.http.start()
        self.ready = True
        logs.info(
            f"agent {self.config.namespace}/{self.config.name} ready",
            grpc_port=self.grpc.port if self.grpc else None,
            http_port=self.http.port if self.http else None,
            exporters=[e.name for e in self.spec.exporters],
        )

    async def shutdown(self) -> None:
        """Stop within the configured grace period, exporting as much as the backends take."""
        self.ready = False
        deadline = time.monotonic() + self.spec.lifecycle.shutdown_grace_period
        if self.grpc:
            await self.grpc.stop(min(_LISTENER_STOP_GRACE, self.spec.lifecycle.shutdown_grace_period))
        if self.http:
            await self.http.stop()
        await self.pipeline.flush()
        drained = await self.pipeline.drain(deadline)
        await self.pipeline.stop()
        if self._telemetry is not None:
            await self._telemetry.cleanup()
        logs.info("agent stopped", drained=drained)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (by a signal handler, or a test)."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def _start_telemetry(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.spec.telemetry.port, reuse_address=True).start()
        self._telemetry = runner

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        return web.Response(text="ready\n") if self.ready else web.Response(status=503, text="not ready\n")
