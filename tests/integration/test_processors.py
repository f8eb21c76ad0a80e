"""Processors end to end: the official OpenTelemetry SDK exporters (gRPC and HTTP) send real traces, metrics
and logs to an agent on loopback, which exports to a real backend; what the backend receives is what the
docs promise, for each processor and each signal."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from opentelemetry.sdk.trace._sampling_experimental import composable_traceid_ratio_based, composite_sampler

from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend, sdk_samples
from tests.support.otlp_backend import wire as backend_wire

APP = {"service.name": "shop", "k8s.namespace.name": "shop", "host.name": "node-1"}


def pipeline(backend: OtlpBackend, processors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    exporter = {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
    return {
        "processors": {"batch": {"timeout": "20ms"}, **processors},
        "exporters": [exporter],
        **extra,
    }


async def send(
    agent: RunningAgent, transport: str, spans: list[Any], metrics: Any = None, logs: list[Any] | None = None
) -> None:
    """Through the SDK's own exporters; every export must succeed (drops are not rejections)."""
    endpoint = agent.grpc_endpoint if transport == "grpc" else agent.http_endpoint
    span_exporter, metric_exporter, log_exporter = sdk_samples.exporters(transport, endpoint)
    try:
        calls = [asyncio.to_thread(span_exporter.export, spans)]
        if metrics is not None:
            calls.append(asyncio.to_thread(metric_exporter.export, metrics))
        if logs is not None:
            calls.append(asyncio.to_thread(log_exporter.export, logs))
        results = await asyncio.gather(*calls)
    finally:
        for exporter in (span_exporter, metric_exporter, log_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert {result.name for result in results} == {"SUCCESS"}


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_resource_actions_reach_every_signal_and_routes_see_the_processed_resource(
    transport: str,
) -> None:
    async with OtlpBackend() as prod, OtlpBackend() as other:
        spec = pipeline(
            prod,
            {
                "resource": {
                    "actions": [
                        {"key": "deployment.environment", "action": "upsert", "value": "prod"},
                        {"key": "host.name", "action": "delete"},
                        {"key": "k8s.namespace.name", "action": "hash"},
                        {"key": "team", "action": "insert", "fromAttribute": "service.name"},
                    ]
                }
            },
            routes={
                "rules": [
                    {
                        "name": "prod",
                        "match": [{"attribute": "deployment.environment", "equals": "prod"}],
                        "exporters": ["backend"],
                    }
                ],
                "default": ["other"],
            },
        )
        spec["exporters"].append(
            {"name": "other", "endpoint": other.http_endpoint, "protocol": "http/protobuf"}
        )
        async with agent_running(spec) as agent:
            await send(
                agent,
                transport,
                sdk_samples.make_spans(6, APP),
                sdk_samples.make_metrics(APP),
                sdk_samples.make_logs(4, APP),
            )
            await prod.wait_for_items_async("logs", 4)
            await prod.wait_for_items_async("traces", 6)
            await prod.wait_for_items_async("metrics", 3)
        assert other.accepted_items("traces") == 0
        hashed = hashlib.sha256(b"shop").hexdigest()
        for resource, _, _ in prod.spans() + prod.data_points() + prod.log_records():
            assert resource["deployment.environment"] == "prod"
            assert "host.name" not in resource
            assert resource["k8s.namespace.name"] == hashed
            assert resource["team"] == "shop"


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_attribute_actions_delete_and_redact_on_spans_logs_and_data_points(transport: str) -> None:
    async with OtlpBackend() as backend:
        spec = pipeline(
            backend,
            {
                "attributes": {
                    "actions": [
                        {"key": "route", "action": "redact", "regex": "/[ab]", "replacement": "/x"},
                        {
                            "key": "index",
                            "action": "delete",
                            "match": {"all": [{"spanName": {"regex": "op-[0-3]"}}]},
                        },
                        {"key": "user.email", "action": "redact", "regex": "[^@]+@", "replacement": "***@"},
                    ]
                }
            },
        )
        spans = sdk_samples.make_spans(6, APP, attributes={"user.email": "ann@example.com"})
        async with agent_running(spec) as agent:
            await send(agent, transport, spans, sdk_samples.make_metrics(APP), sdk_samples.make_logs(2, APP))
            await backend.wait_for_items_async("traces", 6)
            await backend.wait_for_items_async("metrics", 3)
            await backend.wait_for_items_async("logs", 2)
        by_name = {span.name: backend_wire.attributes(span.attributes) for _, _, span in backend.spans()}
        assert "index" not in by_name["op-0"] and "index" not in by_name["op-3"]
        assert by_name["op-4"]["index"] == 4, "spans the match does not hold for keep it"
        assert by_name["op-0"]["user.email"] == "***@example.com"
        assert {backend_wire.attributes(p.attributes)["route"] for _, _, p in backend.data_points()} == {"/x"}
        assert [backend_wire.attributes(r.attributes)["index"] for _, _, r in backend.log_records()] == [0, 1]
        assert (
            agent.metric(
                "otlp_agent_processor_redacted_values_total",
                processor="attributes",
                action="2",
                signal="traces",
            )
            == 3
        )
        assert (
            agent.metric(
                "otlp_agent_processor_redacted_values_total",
                processor="attributes",
                action="0",
                signal="metrics",
            )
            == 3
        )


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_filter_rules_drop_what_they_match_count_it_per_rule_and_never_reject(transport: str) -> None:
    async with OtlpBackend() as backend:
        spec = pipeline(
            backend,
            {
                "filter": {
                    "rules": [
                        {"name": "even-spans", "all": [{"spanName": {"in": ["op-0", "op-2", "op-4"]}}]},
                        {"name": "first-logs", "all": [{"body": {"regex": "log-[0-2]"}}]},
                        {
                            "name": "route-b",
                            "all": [{"attribute": {"attribute": "route", "equals": "/b"}}],
                            "signals": ["metrics"],
                        },
                        {
                            "name": "other-apps",
                            "not": [{"resource": {"attribute": "service.name", "equals": "shop"}}],
                        },
                    ]
                }
            },
        )
        async with agent_running(spec) as agent:
            await send(
                agent,
                transport,
                sdk_samples.make_spans(6, APP),
                sdk_samples.make_metrics(APP),
                sdk_samples.make_logs(5, APP),
            )
            await send(agent, transport, sdk_samples.make_spans(4, {"service.name": "noisy"}))
            await backend.wait_for_items_async("logs", 2)
            await backend.wait_for_items_async("metrics", 2)
            await backend.wait_for_items_async("traces", 3)
        assert sorted(span.name for _, _, span in backend.spans()) == ["op-1", "op-3", "op-5"]
        assert sorted(str(r.body.string_value) for _, _, r in backend.log_records()) == ["log-3", "log-4"]
        assert sorted(
            backend_wire.attributes(p.attributes)["route"] for _, _, p in backend.data_points()
        ) == ["/a", "/a"]
        counted = {
            rule: agent.metric("otlp_agent_processor_filtered_items_total", rule=rule, signal=signal)
            for rule, signal in [
                ("even-spans", "traces"),
                ("first-logs", "logs"),
                ("route-b", "metrics"),
                ("other-apps", "traces"),
            ]
        }
        assert counted == {"even-spans": 3, "first-logs": 3, "route-b": 1, "other-apps": 4}
        assert (
            agent.metric(
                "otlp_agent_refused_items_total", signal="traces", transport=transport, reason="partial"
            )
            == 0
        )
        assert (
            agent.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport=transport) == 10
        )


def sampled_spans(count: int, ratio: float) -> list[Any]:
    """Root spans from an SDK whose consistent sampler (the specification's thresholds) keeps `ratio`."""
    sampler = composite_sampler(composable_traceid_ratio_based(ratio))
    return sdk_samples.root_spans(count, APP, "root", sampler)


def randomness(trace_id: bytes) -> int:
    return int.from_bytes(trace_id[9:], "big")


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_sampling_keeps_the_traces_the_spec_says_and_writes_the_threshold(transport: str) -> None:
    spans = sampled_spans(400, 0.5)  # each carries ot=th:8 from the SDK
    assert spans and all(span.context.trace_state.get("ot") == "th:8" for span in spans)
    async with OtlpBackend() as backend:
        spec = pipeline(backend, {"sampling": {"ratio": 0.5}})  # proportional: 25% overall, th:c
        async with agent_running(spec) as agent:
            await send(agent, transport, spans)
            expected = [s for s in spans if s.context.trace_id & 0xFFFFFFFFFFFFFF >= 0xC0000000000000]
            await backend.wait_for_items_async("traces", len(expected))
        received = [span for _, _, span in backend.spans()]
        assert sorted(span.trace_id for span in received) == sorted(
            s.context.trace_id.to_bytes(16, "big") for s in expected
        )
        assert {span.trace_state for span in received} == {"ot=th:c"}
        assert agent.metric(
            "otlp_agent_processor_sampled_items_total", signal="traces", decision="kept"
        ) == len(expected)
        assert agent.metric(
            "otlp_agent_processor_sampled_items_total", signal="traces", decision="dropped"
        ) == len(spans) - len(expected)


async def test_log_records_are_sampled_with_their_trace() -> None:
    async with OtlpBackend() as backend:
        spec = pipeline(backend, {"sampling": {"ratio": 0.5, "signals": ["traces", "logs"]}})
        spans = sdk_samples.make_spans(40, APP)
        provider_logs = []
        for span in spans:  # one log record per span, in the span's context, as a logging bridge writes them
            record = sdk_samples.make_logs(1, APP)[0]
            record.log_record.trace_id = span.context.trace_id
            record.log_record.span_id = span.context.span_id
            provider_logs.append(record)
        async with agent_running(spec) as agent:
            await send(agent, "http", spans, logs=provider_logs)
            kept = [s for s in spans if s.context.trace_id & 0xFFFFFFFFFFFFFF >= 0x80000000000000]
            await backend.wait_for_items_async("traces", len(kept))
            await backend.wait_for_items_async("logs", len(kept))
        span_traces = {span.trace_id for _, _, span in backend.spans()}
        log_traces = {record.trace_id for _, _, record in backend.log_records()}
        assert span_traces == log_traces == {s.context.trace_id.to_bytes(16, "big") for s in kept}
