"""The agent process: wires receivers, pipeline and exporters, serves self-telemetry, reloads its config, and
shuts down cleanly.

Start order is consumers first (exporters), then producers (receivers), then readiness. On stop: readiness
off, listeners closed, batchers flushed, queues drained until the grace deadline; then what is left is
counted as dropped (memory queues) or stays on disk for the next start (persistent queues).

Reload (when started with `config_path`): the new pipeline is built; receivers switch to it (a listener is
restarted only if its own settings changed); requests the old pipeline is still taking get
`_RELOAD_ENTRY_GRACE` to be in its batchers (those still being taken then are counted and logged, see
`Intake.hand_over` for what becomes of them); persistent queues are handed over through their files (from
a pipeline retired earlier too, when a reload names an exporter again); the old pipeline's other queues
drain to their backends in the background. Nothing queued is dropped. A persistent exporter renamed or
removed leaves its file behind: `stranded_queues` says so at the reload and at every start.

Ports: each listener binds the spec's port, or with `any_free_port` one the OS picks (tests, and several
agents on one machine); either way `ports()` reads them from the bound sockets, and the "ready" log line
and the optional ready file (`ready_file.py`) tell them.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time

from aiohttp import web

from otlp_agent.api import loader, spec
from otlp_agent.exporter.queue.factory import NoQueueDirectory
from otlp_agent.exporter.transport.base import Transport
from otlp_agent.pipeline.intake import Intake
from otlp_agent.process import ready_file, stranded_queues
from otlp_agent.process.reload import POLL_INTERVAL, ConfigWatcher
from otlp_agent.receivers.grpc_receiver import GrpcReceiver
from otlp_agent.receivers.http_receiver import HttpReceiver
from otlp_agent.receivers.websocket_receiver import WebSocketEndpoint
from otlp_agent.telemetry import logs
from otlp_agent.telemetry.metrics import AgentMetrics

#: Requests in progress when a listener stops get this long to finish (within the grace period).
_LISTENER_STOP_GRACE = 2.0
#: On reload, requests the old pipeline is taking get this long to be in its batchers (seconds).
_RELOAD_ENTRY_GRACE = 5.0


class Agent:
    """One running pipeline (and, for a while after a reload, the previous ones draining)."""

    def __init__(
        self,
        pipeline: loader.OTLPPipeline,
        *,
        host: str = "0.0.0.0",
        transports: dict[str, Transport] | None = None,
        queue_dir: pathlib.Path | None = None,
        config_path: pathlib.Path | None = None,
        reload_interval: float = POLL_INTERVAL,
        any_free_port: bool = False,
        ready_path: pathlib.Path | None = None,
    ) -> None:
        """Raises NoQueueDirectory when the pipeline cannot run here (e.g. no queue directory).

        `any_free_port`: every listener binds a port the OS picks instead of the spec's (see `ports()`).
        `ready_path`: where to write the ready file (see `ready_file`)."""
        self.config = pipeline
        self.spec = pipeline.spec
        self.host = host
        self.any_free_port = any_free_port
        self.ready_path = ready_path
        self.telemetry_port: int | None = None
        self.queue_dir = queue_dir
        self.metrics = AgentMetrics()
        self._stranded = stranded_queues.StrandedQueues(queue_dir, self.metrics)
        self._transports = transports
        self.pipeline = Intake(self.spec, self.metrics, transports, queue_dir)
        self.grpc = self._grpc_receiver(self.spec)
        self.http = self._http_receiver(self.spec)
        self.ready = False
        self._telemetry: web.AppRunner | None = None
        self._retiring: dict[asyncio.Task[None], Intake] = {}
        self._watcher = (
            ConfigWatcher(config_path, self.apply_reload, self.metrics, reload_interval)
            if config_path
            else None
        )
        self._watch_task: asyncio.Task[None] | None = None

    def _grpc_receiver(self, s: spec.OTLPPipelineSpec) -> GrpcReceiver | None:
        grpc = s.receivers.otlp.grpc
        if not grpc.enabled:
            return None
        return GrpcReceiver(grpc, self.host, self.pipeline, self.metrics, self._listen_port(grpc.port))

    def _http_receiver(self, s: spec.OTLPPipelineSpec) -> HttpReceiver | None:
        http = s.receivers.otlp.http
        stop_grace = min(_LISTENER_STOP_GRACE, s.lifecycle.shutdown_grace_period)
        if not http.enabled:
            return None
        port = self._listen_port(http.port)
        receiver = HttpReceiver(http, self.host, self.pipeline, self.metrics, stop_grace, listen_port=port)
        websocket = s.receivers.otlp.websocket
        if websocket is not None and websocket.enabled:  # on the HTTP port: its TLS, auth and limits
            endpoint = WebSocketEndpoint(websocket, http, lambda: receiver.consumer, self.metrics, stop_grace)
            receiver.extensions.append(endpoint.install)
        return receiver

    def _listen_port(self, configured: int) -> int:
        return 0 if self.any_free_port else configured

    def ports(self) -> dict[str, int | None]:
        """The ports the listeners are bound to (None: that receiver is off, or not started)."""
        return {
            "grpc": self.grpc.port if self.grpc else None,
            "http": self.http.port if self.http else None,
            "telemetry": self.telemetry_port,
        }

    async def start(self) -> None:
        await self._start_telemetry()
        await self.pipeline.start()
        await self._stranded.at_start(self.spec)
        if self.grpc:
            await self.grpc.start()
        if self.http:
            await self.http.start()
        self.ready = True
        if self._watcher is not None:
            self._watch_task = asyncio.get_running_loop().create_task(
                self._watcher.run(), name="config-watch"
            )
        if self.ready_path is not None:
            ready_file.write(self.ready_path, self.ports())
        logs.info(
            f"agent {self.config.namespace}/{self.config.name} ready",
            **{f"{name}_port": port for name, port in self.ports().items()},
            exporters=[e.name for e in self.spec.exporters],
        )

    async def reload(self, new: loader.OTLPPipeline) -> bool:
        """Switch to `new` without dropping queued data; False (and the old config keeps running) if it
        cannot run here."""
        return await self.apply_reload(new) is None

    async def apply_reload(self, new: loader.OTLPPipeline) -> str | None:
        """`reload`, saying why not (None: the new config runs)."""
        old, old_spec, old_ports = self.pipeline, self.spec, self.ports()
        try:
            pipeline = Intake(new.spec, self.metrics, self._transports, self.queue_dir, old.limiter)
        except (NoQueueDirectory, OSError, ValueError) as exc:
            logs.event("config_rejected", f"new config cannot run: {exc}; keeping the running config")
            return f"cannot run here: {exc}"
        self.pipeline, self.config, self.spec = pipeline, new, new.spec
        await self._switch_receivers(old_spec, new.spec)
        await self._let_requests_in(old)
        await old.flush()
        reopened = stranded_queues.persistent(new.spec)
        for previous in (old, *self._retiring.values()):  # an exporter renamed back may be still draining
            await previous.hand_over(reopened)  # files must be closed before the new pipeline opens them
        await pipeline.start()
        self._stranded.at_reload(old, new.spec)
        task = asyncio.get_running_loop().create_task(old.retire(), name="retire-pipeline")
        self._retiring[task] = old
        task.add_done_callback(lambda done: self._retiring.pop(done, None))
        if old_spec.telemetry.port != new.spec.telemetry.port:
            await self._restart_telemetry()
        moved = self.ports() != old_ports
        if moved and self.ready_path is not None:
            ready_file.write(self.ready_path, self.ports())
        logs.info(
            f"config reloaded: agent {new.namespace}/{new.name}",
            **({f"{name}_port": port for name, port in self.ports().items()} if moved else {}),
            exporters=[e.name for e in new.spec.exporters],
        )
        return None

    async def _let_requests_in(self, old: Intake) -> None:
        """Wait for the requests the old pipeline is taking to be in its batchers (no new one comes: the
        receivers switched), at most `_RELOAD_ENTRY_GRACE`: their data must be there before it is flushed
        and persistent queues are handed over. Those still being taken then are counted and logged; each
        part they add to a handed-over exporter gets its request refused (retryable), the rest is
        exported by the old pipeline as it retires."""
        late = await old.quiesce(_RELOAD_ENTRY_GRACE)
        if late:
            self.metrics.reload_late_requests.inc(late)
            logs.event(
                "reload_late_requests",
                f"config reload: {late} requests were still being accepted by the old pipeline after "
                f"{_RELOAD_ENTRY_GRACE:g}s; going on: those that reach an exporter whose persistent queue is "
                "handed over are refused (retryable)",
                requests=late,
            )

    async def _switch_receivers(self, old: spec.OTLPPipelineSpec, new: spec.OTLPPipelineSpec) -> None:
        same_grpc = old.receivers.otlp.grpc == new.receivers.otlp.grpc
        same_http = (old.receivers.otlp.http, old.receivers.otlp.websocket) == (
            new.receivers.otlp.http,
            new.receivers.otlp.websocket,
        )
        for receiver in (self.grpc, self.http):
            if receiver is not None:
                receiver.consumer = self.pipeline  # requests from now on go to the new pipeline
        if not same_grpc:
            if self.grpc:
                await self.grpc.stop(min(_LISTENER_STOP_GRACE, old.lifecycle.shutdown_grace_period))
            self.grpc = self._grpc_receiver(new)
            if self.grpc:
                await self.grpc.start()
        if not same_http:
            if self.http:
                await self.http.stop()
            self.http = self._http_receiver(new)
            if self.http:
                await self.http.start()

    async def shutdown(self) -> None:
        """Stop within the configured grace period, exporting as much as the backends take."""
        self.ready = False
        if self.ready_path is not None:
            ready_file.remove(self.ready_path)
        deadline = time.monotonic() + self.spec.lifecycle.shutdown_grace_period
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await self._stop_listeners()
        await self.pipeline.flush()
        drained = await self.pipeline.drain(deadline)
        await self._finish_retiring(deadline)
        await self.pipeline.stop()
        if self._telemetry is not None:
            await self._telemetry.cleanup()
        logs.info("agent stopped", drained=drained)

    async def _stop_listeners(self) -> None:
        """Stop listening; requests in progress get the listener grace, then clients still waiting for
        durable / endToEnd delivery are told to send again, so no request outlives the listener."""
        grace = min(_LISTENER_STOP_GRACE, self.spec.lifecycle.shutdown_grace_period)
        stops = [self.grpc.stop(grace)] if self.grpc else []
        stops += [self.http.stop()] if self.http else []
        stopping = asyncio.ensure_future(asyncio.gather(*stops))
        await asyncio.wait([stopping], timeout=grace)
        if not stopping.done():
            for pipeline in (self.pipeline, *self._retiring.values()):
                pipeline.abandon_waiters("the agent is shutting down; send again")
        await stopping

    async def _finish_retiring(self, deadline: float) -> None:
        """Give pipelines still draining after a reload until `deadline`, then stop them."""
        if not self._retiring:
            return
        retiring = dict(self._retiring)
        await asyncio.wait(retiring, timeout=max(0.0, deadline - time.monotonic()))
        for task, pipeline in retiring.items():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pipeline.stop()

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
        app.router.add_get("/config", self._config)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        port = self._listen_port(self.spec.telemetry.port)
        await web.TCPSite(runner, self.host, port, reuse_address=True).start()
        self._telemetry = runner
        self.telemetry_port = int(runner.addresses[0][1])

    async def _restart_telemetry(self) -> None:
        if self._telemetry is not None:
            await self._telemetry.cleanup()
        await self._start_telemetry()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _config(self, request: web.Request) -> web.Response:
        """Which config runs and how the last reload went (see `reload`); without a config file (an agent
        built in-process) there is nothing to report."""
        report = self._watcher.report() if self._watcher is not None else {"sha256": None, "lastReload": None}
        return web.json_response(report)

    async def _readyz(self, request: web.Request) -> web.Response:
        return web.Response(text="ready\n") if self.ready else web.Response(status=503, text="not ready\n")
