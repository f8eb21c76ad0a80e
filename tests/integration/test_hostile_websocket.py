"""The WebSocket receiver under hostile input, on a real `otlp-agent run` process, judged as
tests/integration/test_hostile_agent.py judges the HTTP and gRPC receivers: several connections pipelining
large messages as fast as TCP lets them cost memory within the limit plus the documented overhead (VmHWM),
every message is answered by its id with 200 or a retryable 503, a message with more entries than
`maxItemsPerRequest` is refused for good by id while its connection goes on, and well-behaved clients (over
WebSocket, HTTP and gRPC) keep being answered quickly, their data reaching the backend exactly once.

`OTLP_HOSTILE_SCALE` scales the message sizes as in the other hostile test (default 0.25: 4 MiB messages;
1.0: 16 MiB, the default maxBodySize).
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support import hostile
from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import OtlpBackend
from tests.support.waiting import eventually
from tests.support.websocket_client import OtlpWebSocket

FLOOD_CONNECTIONS = 32
MESSAGES_PER_CONNECTION = 3


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend(keep_bodies=True) as started:
        yield started


def websocket_url(agent: AgentProcess) -> str:
    return agent.url("http", "/v1/websocket").replace("http://", "ws://")


class GoodWebSocketClient:
    """One well-behaved WebSocket client on a thread of its own: small requests of uniquely named spans, one
    at a time, sent again after a retryable refusal; records each answer's latency and what was taken."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.acknowledged: list[str] = []
        self.unexpected: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="good-websocket")

    def __enter__(self) -> GoodWebSocketClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _run(self) -> None:
        async with await OtlpWebSocket.connect(self.url) as client:
            batch = 0
            while not self._stop.is_set():
                batch += 1
                names = [f"good-ws-{batch}-{i}" for i in range(10)]
                while not self._stop.is_set():
                    started = time.monotonic()
                    answer = await client.export("traces", hostile.spans(names), timeout=60)
                    self.latencies.append(time.monotonic() - started)
                    if answer["status"] == 200:
                        self.acknowledged += names
                        break
                    if answer["status"] != 503 or answer.get("retryable") is not True:
                        self.unexpected.append(answer)
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.02)


async def flood(url: str, body: bytes, messages: int) -> list[dict[str, Any]]:
    """One connection sending `messages` large requests back to back (no waiting for answers: TCP and the
    agent's flow control pace it), then collecting every answer."""
    async with await OtlpWebSocket.connect(url) as client:
        ids = [await client.send("traces", body) for _ in range(messages)]
        return [await client.answer(request_id, timeout=120) for request_id in ids]


async def test_large_messages_from_many_connections_cost_bounded_memory_and_others_keep_being_served(
    tmp_path: pathlib.Path, backend: OtlpBackend
) -> None:
    spec = hostile.agent_spec(backend)
    spec["receivers"]["otlp"]["websocket"] = {"enabled": True}
    agent = AgentProcess(hostile.write_config(tmp_path, spec))
    await agent.start()
    url = websocket_url(agent)
    grpc_target = f"127.0.0.1:{agent.port('grpc')}"
    big = hostile.big_valid_body(hostile.BIG_BODY)
    try:
        with (
            hostile.GoodClients(agent.url("http", "/v1/traces"), grpc_target) as good,
            GoodWebSocketClient(url) as good_websocket,
        ):
            await eventually(
                lambda: len(good.acknowledged) >= 40 and len(good_websocket.acknowledged) >= 20,
                timeout=30,
                what="good clients served",
            )
            quiet = len(good.latencies), len(good_websocket.latencies)

            # A message with more entries than maxItemsPerRequest: refused for good, by its id, and the
            # connection goes on.
            async with await OtlpWebSocket.connect(url) as client:
                answer = await client.export("traces", hostile.flood_of_empty_spans(hostile.FLOOD_ITEMS))
                assert (answer["status"], answer["retryable"]) == (413, False), answer
                assert "maxItemsPerRequest" in answer["error"]["message"]
                assert (await client.export("traces", hostile.spans(["after-the-flood"])))["status"] == 200

            # Large valid messages pipelined on many connections: each is taken or refused as retryable.
            answers = await asyncio.gather(
                *(flood(url, big, MESSAGES_PER_CONNECTION) for _ in range(FLOOD_CONNECTIONS))
            )
            during = good.latencies[quiet[0] :] + good_websocket.latencies[quiet[1] :]
        peak = hostile.peak_rss_mib(agent)

        statuses = collections.Counter(a["status"] for connection in answers for a in connection)
        assert set(statuses) <= {200, 503} and statuses[200] > 0, statuses
        assert all(a["retryable"] and a["retryAfter"] >= 1 for c in answers for a in c if a["status"] == 503)

        await hostile.assert_delivered_once(backend, good.acknowledged + good_websocket.acknowledged)
        assert not good.unexpected and not good_websocket.unexpected, (
            good.unexpected,
            good_websocket.unexpected,
        )
        refused = await _refused_for_memory(agent)
    finally:
        agent.stop()

    print(  # shown with -s
        f"scale {hostile.SCALE}: {FLOOD_CONNECTIONS} connections x {MESSAGES_PER_CONNECTION} messages of "
        f"{len(big) / hostile.MiB:.1f} MiB: {dict(statuses)} ({refused:.0f} refused for memory); peak RSS "
        f"{peak:.0f} MiB (limit {hostile.LIMIT_MIB} MiB); good clients during the flood: {len(during)} "
        f"answers, median {statistics.median(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms"
    )
    assert peak <= hostile.LIMIT_MIB + hostile.OVERHEAD_MIB, f"peak RSS {peak:.0f} MiB"
    assert len(during) >= 20, f"good clients got only {len(during)} answers during the flood"
    assert statistics.median(during) < 0.5, f"median latency {statistics.median(during):.2f}s"
    assert not hostile.non_json_lines(agent), hostile.non_json_lines(agent)[:5]


async def _refused_for_memory(agent: AgentProcess) -> float:
    async with aiohttp.ClientSession() as session:
        samples = await agent.samples(session)
    return sum(
        value
        for series, value in samples.items()
        if series.startswith("otlp_agent_refused_requests_total{")
        and 'transport="websocket"' in series
        and 'reason="memory_limit"' in series
    )
