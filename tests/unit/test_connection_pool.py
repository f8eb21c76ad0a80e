"""The exporter's connection pool: batches spread over every connection, at most maxInFlight on each, the
rest wait their turn in order, idle connections close after idleTimeout and open again when needed, and
the pool's metrics say all of it. Runs on virtual time (looptime)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from otlp_agent.exporter.transport import pool
from otlp_agent.telemetry.metrics import AgentMetrics

pytestmark = pytest.mark.looptime


class Clients:
    """Fake clients: numbered as opened; closing one is recorded."""

    def __init__(self) -> None:
        self.numbers = itertools.count()
        self.closed: list[int] = []

    def open(self) -> int:
        return next(self.numbers)

    async def close(self, client: int) -> None:
        self.closed.append(client)


def make(
    count: int, in_flight: int | None, idle: float | None = None
) -> tuple[pool.Pool[int], Clients, AgentMetrics]:
    clients, metrics = Clients(), AgentMetrics()
    return (
        pool.Pool(count, in_flight, idle, clients.open, clients.close, "backend", metrics),
        clients,
        metrics,
    )


async def hold(lease_pool: pool.Pool[int], seconds: float, used: list[int]) -> None:
    async with lease_pool.lease() as client:
        used.append(client)
        await asyncio.sleep(seconds)


async def test_requests_spread_over_every_connection() -> None:
    connections, _, metrics = make(3, 2)
    used: list[int] = []
    await asyncio.gather(*(hold(connections, 1.0, used) for _ in range(6)))
    assert sorted(used) == [0, 0, 1, 1, 2, 2]
    assert metrics.value("otlp_agent_exporter_connections_total", exporter="backend", event="opened") == 3
    assert connections.open_clients == 3


async def test_one_at_a_time_requests_still_rotate_over_the_connections() -> None:
    connections, _, _ = make(3, 1)
    used: list[int] = []
    for _ in range(6):
        await hold(connections, 0.1, used)
    assert used == [0, 1, 2, 0, 1, 2]


async def test_no_connection_carries_more_than_max_in_flight_and_the_rest_wait_in_order(
    looptime: Any,
) -> None:
    connections, _, metrics = make(2, 1)
    order: list[int] = []

    async def request(index: int) -> None:
        async with connections.lease():
            assert max(connections.in_flight()) <= 1
            order.append(index)
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(request(index)) for index in range(5)]
    await asyncio.sleep(0)
    assert connections.in_flight() == [1, 1]
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert float(looptime) == pytest.approx(3.0)  # 5 requests of 1 s, 2 at a time
    waited = metrics.value("otlp_agent_exporter_connection_wait_seconds_count", exporter="backend")
    assert waited == 3


async def test_a_waiter_that_is_cancelled_passes_its_turn_on() -> None:
    connections, _, _ = make(1, 1)
    used: list[int] = []
    first = asyncio.create_task(hold(connections, 1.0, used))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(hold(connections, 1.0, used))
    patient = asyncio.create_task(hold(connections, 1.0, used))
    await asyncio.sleep(0.5)
    quitter.cancel()
    await asyncio.gather(first, patient)
    assert used == [0, 0]
    assert quitter.cancelled()


async def test_idle_connections_close_after_the_idle_timeout_and_reopen_when_needed() -> None:
    connections, clients, metrics = make(2, 1, idle=10.0)
    used: list[int] = []
    await asyncio.gather(hold(connections, 1.0, used), hold(connections, 1.0, used))
    await asyncio.sleep(9.0)
    assert connections.open_clients == 2 and clients.closed == []
    await asyncio.sleep(1.5)
    assert connections.open_clients == 0 and sorted(clients.closed) == [0, 1]
    assert metrics.value("otlp_agent_exporter_connections_total", exporter="backend", event="recycled") == 2
    assert metrics.value("otlp_agent_exporter_connections_open", exporter="backend") == 0
    await hold(connections, 0.1, used)
    assert used[-1] == 2  # a new connection


async def test_a_connection_in_use_is_never_closed_for_idleness() -> None:
    connections, clients, _ = make(1, 2, idle=1.0)
    used: list[int] = []
    long = asyncio.create_task(hold(connections, 5.0, used))
    await hold(connections, 0.1, used)  # finishes while the long one is in flight
    await asyncio.sleep(2.0)
    assert clients.closed == []
    await long
    await asyncio.sleep(1.5)
    assert clients.closed == [0]


async def test_retiring_swaps_every_connection_for_a_fresh_one() -> None:
    connections, clients, _ = make(2, 1)
    used: list[int] = []
    await asyncio.gather(hold(connections, 0.1, used), hold(connections, 0.1, used))
    connections.retire_all()
    await asyncio.sleep(0)
    assert sorted(clients.closed) == [0, 1]
    await hold(connections, 0.1, used)
    assert used[-1] == 2


async def test_without_connections_settings_one_client_takes_every_request() -> None:
    unbounded = pool.Pool(1, None, None, Clients().open, Clients().close)
    used: list[int] = []
    await asyncio.gather(*(hold(unbounded, 1.0, used) for _ in range(50)))
    assert used == [0] * 50
    await unbounded.close()
