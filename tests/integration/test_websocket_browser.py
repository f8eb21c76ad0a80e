"""OTLP over WebSocket from a real browser: headless Chromium (Debian's package) loads a page that builds
spans in JavaScript and sends them to the agent as OTLP/JSON (a text message) and as protobuf (a binary
message) on one WebSocket, reading the answers by id; the spans reach the backend. A page from an origin
the agent does not allow cannot connect at all."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support import headless_chromium, network
from tests.support.agent_runner import agent_running
from tests.support.otlp_backend import OtlpBackend

PAGE = """<!doctype html>
<html><head><title>OTLP over WebSocket</title></head><body><script>
window.otlpResult = (async () => {
  const params = new URLSearchParams(location.search);
  const ws = new WebSocket(params.get("agent"));
  ws.binaryType = "arraybuffer";
  try {
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  } catch (error) {
    return {connected: false};
  }
  const waiting = {};
  ws.onmessage = (event) => { const answer = JSON.parse(event.data); waiting[answer.id](answer); };
  const send = (id, data) => new Promise((resolve) => { waiting[id] = resolve; ws.send(data); });

  const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)),
                                (b) => b.toString(16).padStart(2, "0")).join("");
  const now = BigInt(Date.now()) * 1000000n;
  const span = (i) => ({
    traceId: hex(16), spanId: hex(8), name: `browser-span-${i}`, kind: 3,
    startTimeUnixNano: String(now), endTimeUnixNano: String(now + 1500000n),
    attributes: [{key: "user_agent.original", value: {stringValue: navigator.userAgent}}],
  });
  const request = {resourceSpans: [{
    resource: {attributes: [{key: "service.name", value: {stringValue: "web-frontend"}}]},
    scopeSpans: [{scope: {name: "browser-test"}, spans: [0, 1, 2].map(span)}],
  }]};
  const asJson = await send("json-1", "traces json-1\\n" + JSON.stringify(request));

  const protobuf = Uint8Array.from(atob(params.get("protobuf")), (c) => c.charCodeAt(0));
  const header = new TextEncoder().encode("traces bin-1\\n");
  const message = new Uint8Array(header.length + protobuf.length);
  message.set(header);
  message.set(protobuf, header.length);
  const asProtobuf = await send("bin-1", message.buffer);
  ws.close();
  return {connected: true, answers: [asJson, asProtobuf]};
})();
</script></body></html>
"""


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as started:
        yield started


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A web server for the test page on a loopback port; yields its origin."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/page.html", page)
    runner = web.AppRunner(app, access_log=None)
    port = await network.serve(runner)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def pipeline(backend: OtlpBackend, allowed_origin: str) -> dict[str, Any]:
    exporter = {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
    http = {"cors": {"allowedOrigins": [allowed_origin]}}
    return {
        "receivers": {"otlp": {"http": http, "websocket": {"enabled": True}}},
        "exporters": [exporter],
        "processors": {"batch": {"timeout": "10ms"}},
    }


def protobuf_spans() -> str:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(2):
        scope.spans.add(
            name=f"binary-span-{index}", trace_id=b"\x07" * 16, span_id=(index + 1).to_bytes(8, "big")
        )
    return base64.b64encode(request.SerializeToString()).decode()


def page_url(origin: str, agent_http: str) -> str:
    query = urllib.parse.urlencode(
        {"agent": agent_http.replace("http://", "ws://") + "/v1/websocket", "protobuf": protobuf_spans()}
    )
    return f"{origin}/page.html?{query}"


async def test_a_browser_sends_json_and_protobuf_spans_over_one_websocket(
    backend: OtlpBackend, page_origin: str
) -> None:
    async with (
        agent_running(pipeline(backend, page_origin)) as agent,
        headless_chromium.chromium() as browser,
    ):
        result = await browser.evaluate_in_page(page_url(page_origin, agent.http_endpoint), "otlpResult")
        assert result == {
            "connected": True,
            "answers": [{"id": "json-1", "status": 200}, {"id": "bin-1", "status": 200}],
        }
        await backend.wait_for_items_async("traces", 5)
        spans = {span.name: (resource, span) for resource, _, span in backend.spans()}
        assert sorted(spans) == [
            "binary-span-0",
            "binary-span-1",
            "browser-span-0",
            "browser-span-1",
            "browser-span-2",
        ]
        resource, span = spans["browser-span-0"]
        assert resource == {"service.name": "web-frontend"} and len(span.trace_id) == 16
        agent_string = {a.key: a.value.string_value for a in span.attributes}["user_agent.original"]
        assert "HeadlessChrome" in agent_string or "Chrome" in agent_string


async def test_a_page_from_an_origin_the_agent_does_not_allow_cannot_connect(
    backend: OtlpBackend, page_origin: str
) -> None:
    async with (
        agent_running(pipeline(backend, "https://app.example.com")) as agent,
        headless_chromium.chromium() as browser,
    ):
        result = await browser.evaluate_in_page(page_url(page_origin, agent.http_endpoint), "otlpResult")
        assert result == {"connected": False}
        assert agent.metric("otlp_agent_websocket_refused_connections_total", reason="origin") == 1
        assert backend.requests == []
