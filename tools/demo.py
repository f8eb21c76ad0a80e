"""`make run`: a local agent from an example pipeline, demo traffic from the OpenTelemetry SDK, a summary.

It starts a stand-in backend (a second agent that only receives and counts) where the example's `backend`
exporter points, runs the example pipeline on loopback, sends a few seconds of traces, metrics and logs
with the official OpenTelemetry Python SDK (gRPC and HTTP exporters), shuts everything down gracefully and
prints what was received, batched and exported, with bytes before and after compression.
The SDK is a development dependency, so it is imported only here.

`--any-free-port` runs everything on ports the OS picks (the exporters are pointed at where the stand-in
backends landed), so the demo runs beside anything else on the machine, e.g. in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

from otlp_agent.api import loader
from otlp_agent.api.problems import SpecError
from otlp_agent.process.agent import Agent
from otlp_agent.telemetry import collector_metrics, logs

_DEMO_SECONDS = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an example pipeline locally with demo traffic.")
    parser.add_argument("pipeline", help="pipeline file, e.g. examples/local.yaml")
    parser.add_argument("--seconds", type=float, default=_DEMO_SECONDS, help="how long to send demo traffic")
    parser.add_argument(
        "--any-free-port", action="store_true", help="listen on ports the OS picks instead of the example's"
    )
    args = parser.parse_args(argv)
    try:
        pipeline = loader.load_file(args.pipeline)
    except SpecError as exc:
        print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
        return 2
    logs.configure("warning")
    try:
        return asyncio.run(_demo(pipeline, args.pipeline, args.seconds, args.any_free_port))
    except OSError as exc:
        print(
            f"cannot start the demo: {exc} (is another agent or collector using these ports?)",
            file=sys.stderr,
        )
        return 1


async def _demo(pipeline: loader.OTLPPipeline, path: str, seconds: float, any_free_port: bool) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        stand_ins = {
            e.name: await _stand_in_backend(e.endpoint, scratch, any_free_port)
            for e in pipeline.spec.exporters
            if e.endpoint
        }
        backends = list(stand_ins.values())
        if any_free_port:
            pipeline = _pointed_at(pipeline, stand_ins)
        agent = Agent(pipeline, host="127.0.0.1", any_free_port=any_free_port)
        await agent.start()
        _describe(agent, path)
        print(
            f"\nsending {seconds:g}s of demo traces, metrics and logs with the OpenTelemetry Python SDK ...\n"
        )
        sent = await asyncio.to_thread(_send_demo_traffic, agent.ports(), seconds)
        await agent.shutdown()
        for backend in backends:
            await backend.shutdown()
        _summarize(agent, backends, sent)
    return 0


async def _stand_in_backend(endpoint: str, scratch: str, any_free_port: bool) -> Agent:
    """An agent that receives on the exporter's endpoint (or any free port) and writes what it gets to a
    scratch file."""
    port = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").port
    document = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "stand-in-backend"},
        "spec": {
            "receivers": {"otlp": {"grpc": {"port": port}, "http": {"enabled": False}}}
            if "://" not in endpoint
            else {"otlp": {"grpc": {"enabled": False}, "http": {"port": port}}},
            "exporters": [{"name": "sink", "debug": {"path": f"{scratch}/backend.log"}}],
            "telemetry": {"port": (port or 0) + 1},
        },
    }
    backend = Agent(loader.load_document(document), host="127.0.0.1", any_free_port=any_free_port)
    await backend.start()
    return backend


def _pointed_at(pipeline: loader.OTLPPipeline, stand_ins: dict[str, Agent]) -> loader.OTLPPipeline:
    """`pipeline` with each exporter's endpoint moved to where its stand-in backend listens."""

    def moved(exporter: Any) -> Any:
        stand_in = stand_ins.get(exporter.name)
        if stand_in is None:
            return exporter
        ports = stand_in.ports()
        http = "://" in exporter.endpoint
        endpoint = f"http://127.0.0.1:{ports['http']}" if http else f"127.0.0.1:{ports['grpc']}"
        return exporter.model_copy(update={"endpoint": endpoint})

    exporters = [moved(e) for e in pipeline.spec.exporters]
    return dataclasses.replace(pipeline, spec=pipeline.spec.model_copy(update={"exporters": exporters}))


def _describe(agent: Agent, path: str) -> None:
    ports = agent.ports()
    print(f"pipeline {agent.config.name} from {path}")
    if ports["grpc"] is not None:
        print(f"  receiver  OTLP/gRPC  127.0.0.1:{ports['grpc']}")
    if ports["http"] is not None:
        print(f"  receiver  OTLP/HTTP  http://127.0.0.1:{ports['http']}")
    for e in agent.spec.exporters:
        target = "stdout" if e.debug else f"{e.endpoint} ({e.protocol.value}, {e.compression.value})"
        print(f"  exporter  {e.name:<10} -> {target}")
    print(f"  metrics   http://127.0.0.1:{ports['telemetry']}/metrics")


@dataclasses.dataclass
class Sent:
    spans: int = 0
    points: str = "periodic"
    log_records: int = 0


def _send_demo_traffic(ports: dict[str, int | None], seconds: float) -> Sent:
    """A pretend checkout service: spans over gRPC, metrics and logs over HTTP (SDK batch processors)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    grpc_endpoint = f"127.0.0.1:{ports['grpc']}"
    http_endpoint = f"http://127.0.0.1:{ports['http']}"
    resource = Resource.create({"service.name": "checkout", "k8s.namespace.name": "demo"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{http_endpoint}/v1/metrics"), export_interval_millis=1000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{http_endpoint}/v1/logs"))
    )
    app_log = logging.getLogger("checkout")
    app_log.propagate = False
    app_log.addHandler(LoggingHandler(logger_provider=logger_provider))
    app_log.setLevel(logging.INFO)
    sent = _simulate(tracer_provider, meter_provider, app_log, seconds)
    for provider in (tracer_provider, meter_provider, logger_provider):
        provider.shutdown()
    return sent


def _simulate(tracer_provider: Any, meter_provider: Any, app_log: logging.Logger, seconds: float) -> Sent:
    tracer = tracer_provider.get_tracer("demo.checkout")
    meter = meter_provider.get_meter("demo.checkout")
    orders = meter.create_counter("orders", description="orders placed")
    latency = meter.create_histogram("checkout.duration", unit="ms")
    sent = Sent()
    deadline = time.monotonic() + seconds
    order = 0
    while time.monotonic() < deadline:
        order += 1
        with tracer.start_as_current_span("POST /checkout", attributes={"order.id": order}):
            for step in ("reserve-stock", "charge-card", "send-email"):
                with tracer.start_as_current_span(step, attributes={"order.id": order}):
                    pass
        sent.spans += 4
        orders.add(1, {"payment": "card" if order % 3 else "voucher"})
        latency.record(20 + order % 50)
        if order % 10 == 0:
            app_log.info("order %d placed", order)
            sent.log_records += 1
        time.sleep(0.002)  # pace the pretend service so it looks like traffic, not a benchmark
    return sent


def _summarize(agent: Agent, backends: list[Agent], sent: Sent) -> None:
    m = agent.metrics.value
    print("\nsummary")
    print(f"  sent by the SDK: {sent.spans} spans, metrics every second, {sent.log_records} log records")
    print(
        f"  {'signal':<8} {'received':>9}  "
        + "  ".join(f"{e.name + ' exported':>18}" for e in agent.spec.exporters)
    )
    for signal in ("traces", "metrics", "logs"):
        items = collector_metrics.ITEMS[signal]
        received = sum(
            m(f"otelcol_receiver_accepted_{items}_total", receiver="otlp", transport=t)
            for t in ("grpc", "http")
        )
        exported = [m(f"otelcol_exporter_sent_{items}_total", exporter=e.name) for e in agent.spec.exporters]
        print(f"  {signal:<8} {received:>9.0f}  " + "  ".join(f"{value:>18.0f}" for value in exported))
    for e in agent.spec.exporters:
        if e.debug:
            continue
        raw = m("otlp_agent_export_uncompressed_bytes_total", exporter=e.name)
        wire = m("otlp_agent_export_wire_bytes_total", exporter=e.name)
        batches = sum(
            m("otelcol_processor_batch_batch_send_size_count", processor="batch", exporter=e.name, signal=s)
            for s in ("traces", "metrics", "logs")
        )
        ratio = raw / wire if wire else 0.0
        print(
            f"  exporter {e.name}: {batches:.0f} batches, {raw / 1024:.1f} KiB before compression, "
            f"{wire / 1024:.1f} KiB on the wire ({e.compression.value}, {ratio:.1f}x smaller)"
        )
    for backend in backends:
        accepted = backend.metrics.value
        got = {
            s: accepted(
                f"otelcol_receiver_accepted_{collector_metrics.ITEMS[s]}_total", receiver="otlp", transport=t
            )
            for s in ("traces", "metrics", "logs")
            for t in ("grpc", "http")
            if accepted(
                f"otelcol_receiver_accepted_{collector_metrics.ITEMS[s]}_total", receiver="otlp", transport=t
            )
        }
        print(
            f"  stand-in backend received: {', '.join(f'{v:.0f} {k}' for k, v in got.items()) or 'nothing'}"
        )
    dropped = sum(
        sample.value
        for metric in agent.metrics.registry.collect()
        if metric.name == "otlp_agent_dropped_items"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    print(f"  dropped inside the agent: {dropped:.0f}")


if __name__ == "__main__":
    sys.exit(main())
