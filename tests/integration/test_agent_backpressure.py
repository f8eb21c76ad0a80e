"""Over its memory or queue bounds the agent refuses with a retryable status (clients keep the data), and
queue policies do what their names say."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.exporter.result import ExportResult
from otlp_agent.pipeline import intake

from tests.support.agent_runner import agent_running
from tests.support.calls_in_progress import CallsInProgress
from tests.support.gated_transport import GatedTransport
from tests.support.trace_requests import TRACE_METHOD, post, request_bytes
from tests.support.waiting import eventually


def gated_spec(queue: dict[str, Any] | None = None, limiter: dict[str, Any] | None = None) -> dict[str, Any]:
    processors: dict[str, Any] = {"batch": {"maxItems": 10, "timeout": "5ms"}}
    if limiter:
        processors["memoryLimiter"] = limiter
    exporter = {"name": "slow", "debug": {}, "queue": {"consumers": 1, **(queue or {})}}
    spec = {"processors": processors, "exporters": [exporter], "lifecycle": {"shutdownGracePeriod": "2s"}}
    if limiter:  # a largest request, compressed, must fit twice in the (tiny) memory limit
        spec["receivers"] = {"otlp": {"grpc": {"maxMessageSize": "512Ki"}, "http": {"maxBodySize": "512Ki"}}}
    return spec


async def test_over_the_memory_limit_http_clients_get_503_with_retry_after() -> None:
    slow = GatedTransport()
    spec = gated_spec(limiter={"limit": "1Mi", "spikeLimit": "256Ki"}, queue={"maxBytes": "64Mi"})
    async with agent_running(spec, transports={"slow": slow}) as agent:
        body = request_bytes(10, payload=30_000)  # ~300 KB
        statuses = [(await post(agent, body))[0] for _ in range(4)]
        assert statuses[:2] == [200, 200]
        assert 503 in statuses[2:]
        status, headers = await post(agent, body)
        assert status == 503 and int(headers["Retry-After"]) >= 1
        refused = agent.metric(
            "otlp_agent_refused_requests_total", signal="traces", transport="http", reason="memory_limit"
        )
        assert refused >= 2
        accepted = statuses.count(200)
        slow.gate.set()  # the backend recovers: everything accepted is exported, memory is released
        await eventually(lambda: slow.items == 10 * accepted, what="accepted spans exported")
        await eventually(lambda: agent.agent.pipeline.limiter.held == 0, what="memory released")
        assert (await post(agent, body))[0] == 200


async def test_over_the_memory_limit_grpc_clients_get_unavailable_with_retry_info() -> None:
    slow = GatedTransport()
    spec = gated_spec(limiter={"limit": "1Mi", "spikeLimit": "256Ki"})
    async with agent_running(spec, transports={"slow": slow}) as agent:
        body = request_bytes(10, payload=40_000)
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            export = channel.unary_unary(TRACE_METHOD)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                for _ in range(5):
                    await export(body, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        details = dict(refused.value.trailing_metadata())["grpc-status-details-bin"]
        retry = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(retry)
        assert retry.retry_delay.seconds >= 1
        slow.gate.set()


# Room for two requests of BODY: the batch being exported counts in the queue's bound, so one in flight
# and one waiting fill it.
BODY = request_bytes(10, payload=200)
TWO_BODIES = len(BODY) * 5 // 2


async def test_a_full_queue_with_refuse_policy_refuses_instead_of_dropping() -> None:
    slow = GatedTransport()
    async with agent_running(
        gated_spec(queue={"maxBytes": TWO_BODIES, "whenFull": "refuse"}), transports={"slow": slow}
    ) as agent:
        body = BODY
        assert (await post(agent, body))[0] == 200  # in flight at the (stuck) backend
        await eventually(lambda: slow.waiting == 1, what="first batch in flight")
        assert (await post(agent, body))[0] == 200  # queued: the queue is now full
        await eventually(
            lambda: len(agent.agent.pipeline.exporters[0].queue) == 1, what="second batch queued"
        )
        assert (await post(agent, body))[0] == 503
        slow.gate.set()
        await eventually(lambda: slow.items == 20, what="both accepted batches exported")
        assert (
            agent.metric(
                "otlp_agent_dropped_items_total", exporter="slow", signal="traces", reason="queue_full"
            )
            == 0
        )


async def test_drop_oldest_evicts_the_oldest_batch_and_counts_it() -> None:
    slow = GatedTransport()
    spec = gated_spec(queue={"maxBytes": TWO_BODIES, "whenFull": "dropOldest"})
    async with agent_running(spec, transports={"slow": slow}) as agent:
        runtime = agent.agent.pipeline.exporters[0]
        for expected_depth in (0, 1, 1, 1):
            assert (await post(agent, request_bytes(10, payload=200)))[0] == 200
            await eventually(
                lambda d=expected_depth: len(runtime.queue) == d and slow.waiting == 1, what="queue depth"
            )
        dropped = agent.metric(
            "otlp_agent_dropped_items_total",
            exporter="slow",
            signal="traces",
            reason="queue_full_drop_oldest",
        )
        assert dropped == 20
        slow.gate.set()
        await eventually(lambda: slow.items == 20, what="in-flight and newest batch exported")


async def test_block_policy_holds_the_client_until_there_is_room() -> None:
    slow = GatedTransport()
    spec = gated_spec(queue={"maxBytes": TWO_BODIES, "whenFull": "block"})
    async with agent_running(spec, transports={"slow": slow}) as agent:
        runtime = agent.agent.pipeline.exporters[0]
        assert (await post(agent, request_bytes(10, payload=200)))[0] == 200
        await eventually(lambda: slow.waiting == 1, what="first batch in flight")
        assert (await post(agent, request_bytes(10, payload=200)))[0] == 200
        await eventually(lambda: len(runtime.queue) == 1, what="second batch queued")
        blocked = asyncio.create_task(post(agent, request_bytes(10, payload=200)))
        await eventually(
            lambda: runtime.queue.blocked_producers == 1, what="the third batch waiting for room"
        )
        assert not blocked.done(), "the client waits while the queue is full"
        slow.gate.set()
        assert (await blocked)[0] == 200
        await eventually(lambda: slow.items == 30, what="all three batches exported")


async def test_a_request_larger_than_the_whole_queue_is_refused_for_good_naming_no_exporter() -> None:
    slow = GatedTransport()
    async with agent_running(
        gated_spec(queue={"maxBytes": len(BODY) - 1}), transports={"slow": slow}
    ) as agent:
        status, _ = await post(agent, BODY)
        assert status == 413, "not 503: it could never fit, so retrying cannot help"
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(TRACE_METHOD)(BODY, timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "grpc-status-details-bin" not in dict(refused.value.trailing_metadata() or ()), "no RetryInfo"
        assert "slow" not in (refused.value.details() or "")
        assert (await post(agent, request_bytes(1)))[0] == 200, "what fits is taken"
        slow.gate.set()


async def test_retryable_failures_are_retried_and_permanent_ones_are_not() -> None:
    flaky = GatedTransport(
        ExportResult.failure("HTTP 503", retryable=True),
        ExportResult.failure("HTTP 503", retryable=True),
    )
    broken = GatedTransport(ExportResult.failure("HTTP 400: bad data", retryable=False))
    spec = {
        "processors": {"batch": {"timeout": "5ms"}},
        "exporters": [
            {"name": "flaky", "debug": {}, "retry": {"initialInterval": "1ms", "maxInterval": "2ms"}},
            {"name": "broken", "debug": {}, "retry": {"initialInterval": "1ms", "maxInterval": "2ms"}},
        ],
    }
    flaky.gate.set()
    broken.gate.set()
    async with agent_running(spec, transports={"flaky": flaky, "broken": broken}) as agent:
        assert (await post(agent, request_bytes(5)))[0] == 200
        await eventually(lambda: flaky.items == 15, what="three attempts at the flaky exporter")
        await eventually(
            lambda: (
                agent.metric(
                    "otlp_agent_failed_items_total", exporter="broken", signal="traces", reason="rejected"
                )
                == 5
            ),
            what="the broken exporter's rejection counted",
        )
        assert broken.items == 5, "a permanent failure is tried once"
        assert agent.metric("otlp_agent_export_retries_total", exporter="flaky", signal="traces") == 2
        await eventually(  # counted once the third attempt's answer is back, after the transport saw it
            lambda: agent.metric("otelcol_exporter_sent_spans_total", exporter="flaky") == 5,
            what="the flaky exporter's success counted",
        )


async def test_under_overload_every_acknowledged_span_is_exported_and_the_rest_refused() -> None:
    # What `make bench`'s overload scenario found: admission must reserve queue room for data still in the
    # batchers, or requests answered 200 are dropped later as queue_full.
    slow = GatedTransport()
    spec = gated_spec(queue={"maxBytes": "64Ki", "whenFull": "refuse"})
    spec["processors"]["batch"] = {"maxItems": 50, "timeout": "5ms"}
    async with agent_running(spec, transports={"slow": slow}) as agent:
        body = request_bytes(10, payload=500)  # ~5.6 KB, so the queue holds about a dozen requests
        statuses = await asyncio.gather(*(post(agent, body) for _ in range(60)))
        codes = [status for status, _ in statuses]
        assert set(codes) == {200, 503}, "some admitted, the rest refused with a retryable status"
        slow.gate.set()
        accepted_spans = 10 * codes.count(200)
        await eventually(lambda: slow.items == accepted_spans, what="every acknowledged span exported")
        dropped = sum(
            agent.metric("otlp_agent_dropped_items_total", exporter="slow", signal="traces", reason=reason)
            for reason in ("queue_full", "queue_full_drop_oldest")
        )
        assert dropped == 0


def exported_tags(transport: GatedTransport) -> list[int]:
    """The `tag` (trace id byte) of every span exported, sorted."""
    return sorted(
        span.trace_id[0]
        for batch in transport.batches
        for resource in trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload()).resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    )


DROP_REASONS = ("queue_full", "queue_full_drop_oldest", "shutdown", "internal_error", "disk_error", "max_age")


@pytest.mark.parametrize("queue_type", ["memory", "persistent"])
async def test_a_grpc_client_giving_up_while_block_waits_loses_no_data_answered_200(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, queue_type: str
) -> None:
    """Under `whenFull: block`, the request that fills a batch hands it to the queue and waits for room. If
    that client's deadline passes meanwhile, the batch, which holds an earlier request already answered
    200, still goes in and is exported once the backend answers; nothing is counted as dropped."""
    slow = GatedTransport()
    calls = CallsInProgress(monkeypatch, intake.Intake, "consume")
    queue: dict[str, Any] = {"maxItems": 2, "consumers": 1, "whenFull": "block"}
    if queue_type == "persistent":
        queue |= {"type": "persistent", "storageSize": "1Gi"}
    spec = {
        "processors": {"batch": {"maxItems": 2, "timeout": "60s"}},
        "exporters": [{"name": "slow", "debug": {}, "queue": queue}],
        "lifecycle": {"shutdownGracePeriod": "2s"},
    }
    async with agent_running(spec, transports={"slow": slow}, queue_dir=tmp_path) as agent:
        lane = agent.agent.pipeline.exporters[0]
        assert (await post(agent, request_bytes(2, tag=1)))[0] == 200  # a full batch: exported, held there
        await eventually(lambda: slow.waiting == 1, what="the first batch in flight (the queue is full)")
        assert (await post(agent, request_bytes(1, tag=2)))[0] == 200  # answered: in the open batch
        async with grpc.aio.insecure_channel(agent.grpc_endpoint) as channel:
            call = channel.unary_unary(TRACE_METHOD)(request_bytes(1, tag=3), timeout=2)
            await eventually(
                lambda: lane.queue.blocked_producers == 1, what="the full batch waiting for room"
            )
            assert calls.count == 1, "its client's handler waits with it"
            with pytest.raises(grpc.aio.AioRpcError) as gave_up:
                await call
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The backend answers only once the server has ended the call's handler (its client left).
        await eventually(lambda: calls.count == 0, what="the handler ended")
        slow.gate.set()
        await eventually(lambda: len(slow.batches) == 2, what="both batches exported")
        assert exported_tags(slow) == [1, 1, 2, 3], "the request answered 200 is exported"
        for reason in DROP_REASONS:
            assert (
                agent.metric(
                    "otlp_agent_dropped_items_total", exporter="slow", signal="traces", reason=reason
                )
                == 0
            ), reason
        assert agent.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="slow") == 0


async def test_at_the_default_sizes_slow_largest_bodies_leave_room_for_a_small_request() -> None:
    # Sixteen clients declare a body of the default maxBodySize (16 MiB, a sixteenth of the default 256Mi
    # limit) and trickle it, well within readTimeout: all sixteen reservations would take the whole limit.
    spec = {"exporters": [{"name": "backend", "debug": {}}]}
    async with agent_running(spec) as agent:
        limiter = agent.agent.pipeline.limiter
        assert limiter.limit == 256 * 1024 * 1024
        largest = 16 * 1024 * 1024
        writers = []
        for _ in range(16):
            _, writer = await asyncio.open_connection("127.0.0.1", agent.http_port)
            writer.write(
                b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                + f"Content-Length: {largest}\r\n\r\n".encode()
                + b"\x0a"
            )
            writers.append(writer)

        async def trickle() -> None:
            while True:
                await asyncio.sleep(0.5)
                for writer in writers:
                    writer.write(b"\x00")

        trickling = asyncio.get_running_loop().create_task(trickle())
        try:
            await eventually(lambda: limiter.receiving >= 15 * largest, what="the slow bodies' reservations")
            status, _ = await post(agent, request_bytes(1))
            assert status == 200, "a small request waited behind slow large ones and was refused"
        finally:
            trickling.cancel()
            for writer in writers:
                writer.close()
