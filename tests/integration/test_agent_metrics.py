"""The agent's /metrics as a collector dashboard reads it: the collector's names and labels count what
happened (accepted, refused, sent, failed, enqueue failures, queue bounds, processors, batches, the
process), and docs/agent.md lists exactly the families a running agent serves."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
from typing import Any

import aiohttp

from tests.support import metrics_docs
from tests.support.agent_runner import RunningAgent, agent_running
from tests.support.otlp_backend import OtlpBackend, sdk_samples
from tests.support.otlp_backend.faults import Fault
from tests.support.sdk_forwarding import RESOURCE, exporter_to, send_all_signals
from tests.support.waiting import eventually

PREFIXES = ("otelcol_", "otlp_agent_", "process_")


async def scrape(agent: RunningAgent) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{agent.telemetry_url}/metrics") as answer:
        assert answer.status == 200
        return await answer.text()


async def test_the_docs_list_exactly_the_metric_families_a_running_agent_serves() -> None:
    with OtlpBackend() as backend:
        async with agent_running({"exporters": [exporter_to(backend, "grpc", "gzip")]}) as agent:
            served = metrics_docs.served(await scrape(agent), PREFIXES)
    documented = metrics_docs.agent_documented()
    assert served - documented == set(), "served but not in docs/agent.md"
    assert documented - served == set(), "in docs/agent.md but not served"


def spec_with(backend: OtlpBackend, filtered: bool = False, **exporter: Any) -> dict[str, Any]:
    """A fast-batching exporter to `backend`; with `filtered`, a filter dropping odd-indexed spans."""
    processors: dict[str, Any] = {"batch": {"timeout": "20ms"}}
    if filtered:
        odd = {"attribute": {"attribute": "index", "regex": "[0-9]*[13579]"}}
        processors["filter"] = {"rules": [{"name": "odd", "signals": ["traces"], "all": [odd]}]}
    return {
        "processors": processors,
        "exporters": [{**exporter_to(backend, "http/protobuf", "zstd"), **exporter}],
    }


async def test_a_collector_dashboard_reads_what_the_agent_received_processed_batched_and_sent() -> None:
    with OtlpBackend() as backend:
        async with agent_running(spec_with(backend, filtered=True)) as agent:
            await send_all_signals("grpc", agent.grpc_endpoint)
            await backend.wait_for_items_async("traces", 20)  # the filter drops the 20 odd-indexed spans
            await backend.wait_for_items_async("logs", 25)
            m = agent.metric
            # Each signal has its own batch, and an export is counted once its answer is back (after the
            # backend has seen it): wait for every exporter count asserted below.
            await eventually(lambda: m("otelcol_exporter_sent_log_records_total", exporter="backend") == 25)
            await eventually(lambda: m("otelcol_exporter_sent_spans_total", exporter="backend") == 20)
            await eventually(lambda: m("otelcol_exporter_sent_metric_points_total", exporter="backend") == 3)
            text = await scrape(agent)
    assert m("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc") == 40
    assert m("otelcol_receiver_accepted_metric_points_total", receiver="otlp", transport="grpc") == 3
    assert m("otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="grpc") == 25
    assert m("otelcol_processor_incoming_items_total", processor="filter", otel_signal="traces") == 40
    assert m("otelcol_processor_outgoing_items_total", processor="filter", otel_signal="traces") == 20
    assert m("otelcol_exporter_sent_spans_total", exporter="backend") == 20
    assert m("otelcol_exporter_sent_metric_points_total", exporter="backend") == 3
    batches = ("batch", "backend", "traces")
    labels = dict(zip(("processor", "exporter", "signal"), batches, strict=True))
    assert m("otelcol_processor_batch_batch_send_size_sum", **labels) == 20
    assert m("otelcol_processor_batch_timeout_trigger_send_total", **labels) >= 1
    assert m("otelcol_processor_batch_batch_send_size_bytes_count", **labels) >= 1
    assert m("otelcol_exporter_queue_capacity", exporter="backend") == 64 * 1024 * 1024
    assert m("otlp_agent_queue_capacity_items", exporter="backend") == 1_000_000
    assert m("otelcol_process_memory_rss_bytes") > 0 and m("otelcol_process_uptime_seconds_total") > 0
    assert (
        m(
            "otlp_agent_build_info",
            version=importlib.metadata.version("otlp-operator"),
            python=platform.python_version(),
        )
        == 1
    )
    assert "_created" not in text


async def test_refusals_enqueue_failures_and_send_failures_are_counted_under_the_collectors_names() -> None:
    with OtlpBackend() as backend:
        spec = spec_with(backend, queue={"maxBytes": "4Ki"})
        async with agent_running(spec) as agent:
            span_exporter, _, _ = sdk_samples.exporters("http", agent.http_endpoint)  # 413: never retried
            try:
                too_big = await asyncio.to_thread(span_exporter.export, sdk_samples.make_spans(200, RESOURCE))
                assert too_big.name == "FAILURE", "larger than the whole queue: refused for good"
                backend.script(Fault.invalid(), signal="traces")
                small = await asyncio.to_thread(span_exporter.export, sdk_samples.make_spans(2, RESOURCE))
                assert small.name == "SUCCESS"
            finally:
                await asyncio.to_thread(span_exporter.shutdown)
            m = agent.metric
            await eventually(lambda: m("otelcol_exporter_send_failed_spans_total", exporter="backend") == 2)
    assert m("otelcol_receiver_refused_spans_total", receiver="otlp", transport="http") == 200
    assert m("otlp_agent_refused_items_total", signal="traces", transport="http", reason="too_large") == 200
    assert m("otelcol_exporter_enqueue_failed_spans_total", exporter="backend") == 200
    assert m("otlp_agent_failed_items_total", exporter="backend", signal="traces", reason="rejected") == 2
    assert m("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http") == 2
