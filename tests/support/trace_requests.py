"""OTLP trace export requests made by hand (no SDK), for tests that send exact bytes to a running agent
(tests/support/agent_runner.py) and assert on exactly what it answers.

* `request_bytes(spans, payload=0, tag=1)` — spans of one trace (`tag` makes requests different data),
  each optionally carrying a `payload`-character attribute.
* `valid_request(spans=3)` — a small well-formed request, for tests that damage, grow or refuse it.
* `post(agent, body)` — (status, headers) of an OTLP/HTTP protobuf POST (`RunningAgent.post_traces`).
* `TRACE_METHOD` — the gRPC method a traces export calls.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_runner import RunningAgent

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def request_bytes(spans: int, payload: int = 0, tag: int = 1) -> bytes:
    """`tag` goes into the trace id: requests with different tags are different data."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(spans):
        span = scope.spans.add(name="s", trace_id=bytes([tag]) * 16, span_id=(index + 1).to_bytes(8, "big"))
        if payload:
            span.attributes.add(key="blob").value.string_value = "x" * payload
    return bytes(request.SerializeToString())


def valid_request(spans: int = 3) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(spans):
        span = scope.spans.add(
            name=f"ok-{index}", trace_id=bytes(range(1, 17)), span_id=(index + 1).to_bytes(8, "big")
        )
        span.attributes.add(key="k").value.string_value = "v"
    return bytes(request.SerializeToString())


async def post(agent: RunningAgent, body: bytes) -> tuple[int, Any]:
    answer = await agent.post_traces(body)
    return answer.status, answer.headers
