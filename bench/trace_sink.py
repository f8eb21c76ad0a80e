"""A trace-recording sink: an OTLP/HTTP backend (in its own process) that remembers which trace ids it got.

The load-balancing study gives each gateway agent one of these, so after the run it can prove that every
span of a trace reached the same gateway: the sinks' trace-id sets must not overlap. Each request is parsed
(upb) and its spans' trace ids added to a set; spans are counted. `stop()` returns the count and the set.
Plain HTTP, protobuf, any path; compressed bodies are decoded with the bench's own codecs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench import wire
from bench.fleet import CTX, _reap


class _Recorder:
    def __init__(self) -> None:
        self.spans = 0
        self.traces: set[bytes] = set()

    async def handle(self, request: web.Request) -> web.Response:
        body = wire.decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans += len(scope.spans)
                self.traces.update(span.trace_id for span in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


async def _serve(ports: Any, stop: Any, results: Any) -> None:
    recorder = _Recorder()
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    ports.send(runner.addresses[0][1])
    try:
        while not stop.is_set():  # noqa: ASYNC110  (a multiprocessing Event cannot be awaited)
            await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    results.send((recorder.spans, b"".join(sorted(recorder.traces))))


def _main(ports: Any, stop: Any, results: Any, cpus: tuple[int, ...] | None) -> None:
    if cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    asyncio.run(_serve(ports, stop, results))


@dataclass
class TraceSink:
    """A running trace-recording sink."""

    process: Any
    stop_event: Any
    results: Any
    port: int

    @classmethod
    def start(cls, cpus: tuple[int, ...] | None = None) -> TraceSink:
        ports_out, ports_in = CTX.Pipe(duplex=False)
        results_out, results_in = CTX.Pipe(duplex=False)
        stop = CTX.Event()
        process = CTX.Process(target=_main, args=(ports_in, stop, results_in, cpus), daemon=True)
        process.start()
        if not ports_out.poll(20):
            _reap([process], 0)
            raise RuntimeError("the trace sink did not start")
        return cls(process, stop, results_out, ports_out.recv())

    def stop(self) -> tuple[int, set[bytes]]:
        """Stop it; (spans received, distinct trace ids)."""
        self.stop_event.set()
        spans, joined = self.results.recv() if self.results.poll(30) else (0, b"")
        _reap([self.process], 5)
        return spans, {joined[i : i + 16] for i in range(0, len(joined), 16)}
