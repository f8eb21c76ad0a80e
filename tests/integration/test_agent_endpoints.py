"""Self-telemetry and browser access: /metrics, /healthz, /readyz, and CORS on the OTLP/HTTP receiver."""

from __future__ import annotations

import aiohttp

from tests.support.agent_runner import agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.sdk_forwarding import exporter_to, send_all_signals
from tests.support.waiting import eventually

#: What `send_all_signals` sends, as the exporter counts it once exported.
SENT = {
    "otelcol_exporter_sent_spans_total": 40,
    "otelcol_exporter_sent_metric_points_total": 3,
    "otelcol_exporter_sent_log_records_total": 25,
}


async def test_metrics_health_and_readiness_tell_the_truth() -> None:
    with OtlpBackend() as backend:
        spec = {
            "processors": {"batch": {"timeout": "10ms"}},
            "exporters": [exporter_to(backend, "http/protobuf", "zstd")],
        }
        async with agent_running(spec) as agent, aiohttp.ClientSession() as session:
            await send_all_signals("grpc", agent.grpc_endpoint)
            await backend.wait_for_items_async("traces", 40)
            # Each signal has its own batch, and an export is counted once its answer is back: wait for all.
            await eventually(
                lambda: all(agent.metric(name, exporter="backend") == n for name, n in SENT.items()),
                what=f"exports counted: {SENT}",
            )
            async with session.get(f"{agent.telemetry_url}/metrics") as response:
                text = await response.text()
            assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 40.0' in text
            assert 'otelcol_exporter_sent_metric_points_total{exporter="backend"} 3.0' in text
            wire = agent.metric("otlp_agent_export_wire_bytes_total", exporter="backend")
            raw = agent.metric("otlp_agent_export_uncompressed_bytes_total", exporter="backend")
            assert 0 < wire < raw, "zstd made the exports smaller"
            for path in ("/healthz", "/readyz"):
                async with session.get(agent.telemetry_url + path) as response:
                    assert response.status == 200
            agent.agent.ready = False  # what shutdown does first
            async with session.get(agent.telemetry_url + "/readyz") as response:
                assert response.status == 503


async def test_cors_allows_configured_origins_only() -> None:
    with OtlpBackend() as backend:
        spec = {
            "receivers": {"otlp": {"http": {"cors": {"allowedOrigins": ["https://app.example.com"]}}}},
            "exporters": [exporter_to(backend, "http/protobuf", "gzip")],
        }
        async with agent_running(spec) as agent, aiohttp.ClientSession() as session:
            url = f"{agent.http_endpoint}/v1/traces"
            preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
            async with session.options(url, headers=preflight) as response:
                assert response.status == 204
                assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
                assert "content-type" in response.headers["Access-Control-Allow-Headers"]
            async with session.options(
                url, headers={**preflight, "Origin": "https://evil.example"}
            ) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
            headers = {"Origin": "https://app.example.com", "Content-Type": "application/json"}
            async with session.post(url, data=b"{}", headers=headers) as response:
                assert response.status == 200
                assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
