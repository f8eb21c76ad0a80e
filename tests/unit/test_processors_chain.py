"""The processors' chain as the intake sees it: absent when nothing is configured (the fast path stays
untouched), the same bytes object back when nothing changed, and the shipped example doing what its
comments say."""

from __future__ import annotations

import asyncio
import pathlib

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_agent.api import loader, rules, spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline import intake
from otlp_agent.pipeline.processors import chain
from otlp_agent.telemetry.metrics import AgentMetrics

from bench import payloads

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "processors.yaml"


def processors(config: dict[str, object]) -> spec.Processors:
    return rules.validate_spec({"exporters": [{"name": "x", "debug": {}}], "processors": config}).processors


def test_without_processors_the_intake_has_no_chain_to_call() -> None:
    s = rules.validate_spec({"exporters": [{"name": "x", "debug": {}}]})
    assert intake.Intake(s, AgentMetrics()).processors is None
    assert chain.build(processors({"sampling": {"ratio": 1.0}}), AgentMetrics()) is None  # keeps everything


def test_a_request_nothing_changes_is_handed_on_as_the_same_bytes_object() -> None:
    body = payloads.build_bodies(1, 100)[0]
    built = chain.build(
        processors({"attributes": {"actions": [{"key": "absent", "action": "delete"}]}}), AgentMetrics()
    )
    assert built is not None
    out, items = built.apply(Signal.traces, body, 100)
    assert out is body and items == 100


def kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def test_the_processors_example_cleans_up_what_it_forwards() -> None:
    pipeline = loader.load_file(EXAMPLE)
    metrics = AgentMetrics()
    built = chain.build(pipeline.spec.processors, metrics)
    assert built is not None
    keep_all = b"\x00" * 9 + b"\xff" * 7  # randomness above every threshold: kept at 10%
    spans = [
        trace_pb2.Span(trace_id=keep_all, span_id=b"\x01" * 8, name="GET /healthz"),
        trace_pb2.Span(
            trace_id=keep_all,
            span_id=b"\x02" * 8,
            name="GET /cart",
            attributes=[kv("user.email", "ann@example.com"), kv("url.full", "/pay?card=4111 1111 1111 1111")],
        ),
    ]
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[kv("host.name", "pod-1"), kv("team", "shop")]),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    )
    out, items = built.apply(Signal.traces, request.SerializeToString(), 2)
    assert items == 1
    (entry,) = wire.parse(Signal.traces, out).resource_spans
    resource = {a.key: a.value.string_value for a in entry.resource.attributes}
    assert resource == {"team": "shop", "deployment.environment": "production", "service.owner": "shop"}
    (span,) = entry.scope_spans[0].spans
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["url.full"] == "/pay?card=****"
    assert len(attributes["user.email"]) == 64 and "@" not in attributes["user.email"]
    assert span.trace_state == "ot=th:e666"
    assert (
        metrics.value("otlp_agent_processor_filtered_items_total", rule="health-checks", signal="traces") == 1
    )


async def test_a_large_request_is_processed_off_the_event_loop_with_the_same_result() -> None:
    body = payloads.build_bodies(1, 800)[0]
    assert len(body) > chain.THREAD_BYTES
    built = chain.build(processors({"sampling": {"ratio": 0.5}}), AgentMetrics())
    assert built is not None
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.get_running_loop().create_task(ticker())
    try:
        out, items = await built.run(Signal.traces, body, 800)
    finally:
        running.cancel()
    assert (out, items) == built.apply(Signal.traces, body, 800)
    assert 0 < items < 800
    assert ticks > 1, "the event loop ran other tasks while the request was processed"
