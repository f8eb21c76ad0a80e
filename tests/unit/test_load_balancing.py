"""The load-balancing transport, with a scripted resolver and scripted per-address transports: spans of a
trace always reach the same address, a failing address's share is re-hashed over the others at once
(and nothing twice), a part refused for good is counted and the rest delivered, the address set follows
DNS, and an address that left is closed once its exports are done."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport import factory, resolver
from otlp_agent.exporter.transport.loadbalancing import LoadBalancingTransport
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock
from tests.support.placed_requests import traces
from tests.support.waiting import eventually_async

DOWN = ExportResult.failure("connection refused", retryable=True)
BAD = ExportResult.failure("HTTP 400: bad", retryable=False)


class Address:
    """A scripted transport for one address: records what it got, answers `results` then success."""

    def __init__(self, endpoint: str, results: list[ExportResult]) -> None:
        self.endpoint = endpoint
        self.results = results
        self.batches: list[Batch] = []
        self.gate: asyncio.Event | None = None
        self.held = asyncio.Event()  # set once an export waits at the gate
        self.closed = False

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        if self.gate is not None:
            self.held.set()
            await self.gate.wait()
        result = self.results.pop(0) if self.results else ExportResult.success(wire_bytes=batch.size)
        if result.ok:
            self.batches.append(batch)
        return result

    async def close(self) -> None:
        self.closed = True

    def trace_ids(self) -> list[bytes]:
        return [
            span.trace_id
            for batch in self.batches
            for rs in trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload()).resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


class World:
    """DNS answers the test controls, and the per-address transports the load balancer made."""

    def __init__(self, ips: list[str]) -> None:
        self.ips = ips
        self.lookups = 0
        self.fail = False
        self.addresses: dict[str, Address] = {}
        self.scripts: dict[str, list[ExportResult]] = {}

    async def lookup(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        if self.fail:
            raise OSError("Temporary failure in name resolution")
        return list(self.ips)

    def make(self, exporter: spec.Exporter) -> Address:
        assert exporter.endpoint is not None and exporter.load_balancing is None
        found = self.addresses[exporter.endpoint] = Address(
            exporter.endpoint, self.scripts.pop(exporter.endpoint, [])
        )
        return found


def exporter(**balancing: Any) -> spec.Exporter:
    return spec.Exporter.model_validate(
        {
            "name": "gateways",
            "endpoint": "gateway-otlp-headless.observability.svc:4317",
            "loadBalancing": balancing,
            "retry": {"initialInterval": "2s", "maxInterval": "10s"},
        }
    )


def balancer(world: World, clock: FakeClock | None = None, **balancing: Any) -> LoadBalancingTransport:
    return LoadBalancingTransport(
        exporter(**balancing),
        world.make,
        AgentMetrics(),
        lookup=world.lookup,
        clock=clock or FakeClock(),
    )


def batch_of(trace_ids: list[bytes]) -> Batch:
    data = traces([[trace_ids]]).SerializeToString()
    return Batch(spec.Signal.traces, [data], len(trace_ids), len(data))


def counts(transport: LoadBalancingTransport, metric: str, **labels: str) -> float:
    metrics = transport._metrics
    assert metrics is not None
    return metrics.value(metric, **labels)


async def test_every_span_of_a_trace_reaches_the_same_address_across_batches() -> None:
    world = World(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    transport = balancer(world)
    traces_ = [os.urandom(16) for _ in range(60)]
    for round_ in range(5):
        result = await transport.export(batch_of([t for t in traces_ for _ in range(2)][round_::5]), 5)
        assert result.ok
    owners: dict[bytes, set[str]] = {}
    for address in world.addresses.values():
        for trace_id in address.trace_ids():
            owners.setdefault(trace_id, set()).add(address.endpoint)
    assert len(owners) == 60 and all(len(where) == 1 for where in owners.values())
    assert {e for where in owners.values() for e in where} == {f"10.0.0.{n}:4317" for n in (1, 2, 3)}
    delivered = sum(
        counts(
            transport, "otlp_agent_loadbalancer_items_total", exporter="gateways", endpoint=e, signal="traces"
        )
        for e in world.addresses
    )
    assert delivered == 120
    await transport.close()


async def test_a_failing_address_share_goes_to_the_others_at_once_and_nothing_twice() -> None:
    world = World(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    world.scripts["10.0.0.2:4317"] = [DOWN]
    clock = FakeClock()
    transport = balancer(world, clock)
    ids = [os.urandom(16) for _ in range(30)]
    result = await transport.export(batch_of(ids), 5)
    assert result.ok and result.dropped == 0, "re-hashed over the two others in the same attempt"
    failed = world.addresses["10.0.0.2:4317"]
    assert failed.batches == []
    everything = [t for x in world.addresses.values() for t in x.trace_ids()]
    assert sorted(everything) == sorted(ids), "every span delivered exactly once"
    assert transport._ring.addresses == ("10.0.0.1:4317", "10.0.0.3:4317"), "held back"
    clock.now += 2.0  # retry.initialInterval: 10.0.0.2 gets its keys again
    assert (await transport.export(batch_of(ids), 5)).ok
    assert failed.trace_ids(), "back in the ring"
    assert (
        counts(
            transport,
            "otlp_agent_loadbalancer_failed_requests_total",
            exporter="gateways",
            endpoint="10.0.0.2:4317",
            retryable="true",
        )
        == 1
    )
    await transport.close()


async def test_by_resource_a_failing_address_share_is_re_hashed_and_each_resource_stays_whole() -> None:
    world = World(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    clock = FakeClock()
    transport = balancer(world, clock, routingKey="resource")
    shape = [[[os.urandom(16) for _ in range(3)]] for _ in range(24)]
    data = traces(shape).SerializeToString()
    assert (await transport.export(Batch(spec.Signal.traces, [data], 72, len(data)), 5)).ok
    first = {e: len(a.trace_ids()) for e, a in world.addresses.items()}
    assert all(first.values()), "24 resources spread over the three addresses"
    world.addresses["10.0.0.2:4317"].results = [DOWN]
    for address in world.addresses.values():
        address.batches.clear()
    result = await transport.export(Batch(spec.Signal.traces, [data], 72, len(data)), 5)
    assert result.ok and result.dropped == 0
    everything = [t for x in world.addresses.values() for t in x.trace_ids()]
    assert sorted(everything) == sorted(t for r in shape for s in r for t in s), "every span exactly once"
    where: dict[str, set[str]] = {}
    for endpoint, address in world.addresses.items():
        for batch in address.batches:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload())
            for rs in request.resource_spans:
                where.setdefault(rs.resource.attributes[0].value.string_value, set()).add(endpoint)
    assert len(where) == 24 and all(len(e) == 1 for e in where.values()), "a resource is never split"
    assert "10.0.0.2:4317" not in {e for es in where.values() for e in es}
    await transport.close()


async def test_by_resource_a_hold_over_before_the_next_round_does_not_confuse_the_owner_cache() -> None:
    """With a 1ms retry.initialInterval the failed address is back in the resolved ring by the next round,
    but not in this export's re-hash ring: owners cached for the resolved ring must not be used there."""

    class Ticking(FakeClock):
        def __call__(self) -> float:
            self.now += 0.01  # every look at the clock is 10ms later
            return self.now

    world = World(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    world.scripts["10.0.0.2:4317"] = [ExportResult.success(), DOWN]
    settings = exporter(routingKey="resource").model_copy(
        update={"retry": spec.Retry.model_validate({"initialInterval": "1ms", "maxInterval": "1ms"})}
    )
    transport = LoadBalancingTransport(
        settings, world.make, AgentMetrics(), lookup=world.lookup, clock=Ticking()
    )
    shape = [[[os.urandom(16)]] for _ in range(24)]
    data = traces(shape).SerializeToString()
    for _ in range(2):
        result = await transport.export(Batch(spec.Signal.traces, [data], 24, len(data)), 30)
        assert result.ok and result.dropped == 0
    delivered = [t for x in world.addresses.values() for t in x.trace_ids()]
    assert sorted(delivered) == sorted([t for r in shape for s in r for t in s] * 2), "each once per export"
    await transport.close()


async def test_when_every_address_fails_what_is_left_waits_for_the_retry_and_holds_grow() -> None:
    world = World(["10.0.0.1", "10.0.0.2"])
    world.scripts["10.0.0.1:4317"] = [DOWN, DOWN]
    world.scripts["10.0.0.2:4317"] = [DOWN]
    clock = FakeClock()
    transport = balancer(world, clock)
    ids = [os.urandom(16) for _ in range(20)]
    batch = batch_of(ids)
    first = await transport.export(batch, 5)
    assert not first.ok and first.retryable and "connection refused" in first.message
    assert not transport._ring.addresses or transport._held, "both held back"
    clock.now += 2.0  # both rejoin; 10.0.0.1 fails again and is held twice as long (4 s)
    second = await transport.export(batch, 5)
    assert second.ok
    assert sorted(world.addresses["10.0.0.2:4317"].trace_ids()) == sorted(ids), "all of it, once"
    assert transport._held["10.0.0.1:4317"] == pytest.approx(clock.now + 4.0)
    await transport.close()


async def test_a_part_refused_for_good_is_counted_and_the_rest_delivered() -> None:
    world = World(["10.0.0.1", "10.0.0.2"])
    world.scripts["10.0.0.1:4317"] = [BAD]
    transport = balancer(world)
    ids = [os.urandom(16) for _ in range(20)]
    result = await transport.export(batch_of(ids), 5)
    refused = 20 - len(world.addresses["10.0.0.2:4317"].trace_ids())
    assert result.ok and result.dropped == refused > 0
    assert "HTTP 400" in result.message
    assert (
        counts(
            transport,
            "otlp_agent_failed_items_total",
            exporter="gateways",
            signal="traces",
            reason="rejected",
        )
        == refused
    )
    await transport.close()


async def test_round_robin_sends_whole_batches_in_turn() -> None:
    world = World(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    transport = balancer(world, routingKey="roundRobin")
    batches = [batch_of([os.urandom(16) for _ in range(10)]) for _ in range(6)]
    for batch in batches:
        assert (await transport.export(batch, 5)).ok
    got = {a: [b.payload() for b in x.batches] for a, x in world.addresses.items()}
    assert sorted(len(v) for v in got.values()) == [2, 2, 2]
    assert sorted(p for v in got.values() for p in v) == sorted(b.payload() for b in batches)
    await transport.close()


async def test_the_address_set_follows_dns_and_a_departed_address_closes_after_its_exports() -> None:
    world = World(["10.0.0.1", "10.0.0.2"])
    transport = balancer(world, resolveInterval="1s")
    ids = [os.urandom(16) for _ in range(40)]
    assert (await transport.export(batch_of(ids), 5)).ok
    leaving = world.addresses["10.0.0.2:4317"]
    leaving.gate = asyncio.Event()
    exporting = asyncio.create_task(transport.export(batch_of(ids), 5))
    await asyncio.wait_for(leaving.held.wait(), timeout=10)  # its part is in flight to 10.0.0.2
    world.ips = ["10.0.0.1", "10.0.0.3"]
    transport._resolve_now.set()

    async def resolved() -> bool:
        return "10.0.0.3:4317" in transport._ring.addresses

    await eventually_async(resolved, what="the new address set")
    assert transport._ring.addresses == ("10.0.0.1:4317", "10.0.0.3:4317")
    assert not leaving.closed, "still exporting"
    leaving.gate.set()
    assert (await exporting).ok

    async def closed() -> bool:
        return leaving.closed

    await eventually_async(closed, what="the departed address closed")
    assert (await transport.export(batch_of(ids), 5)).ok
    assert world.addresses["10.0.0.3:4317"].trace_ids()
    await transport.close()


async def test_a_failed_resolution_keeps_the_known_addresses_and_none_at_all_is_retryable() -> None:
    world = World(["10.0.0.1"])
    world.fail = True
    transport = balancer(world)
    result = await transport.export(batch_of([os.urandom(16)]), 5)
    assert not result.ok and result.retryable and "resolved to no address" in result.message
    world.fail = False
    await transport._resolve()
    assert (await transport.export(batch_of([os.urandom(16)]), 5)).ok
    world.fail = True
    await transport._resolve()
    assert transport._ring.addresses == ("10.0.0.1:4317",)
    assert (
        counts(transport, "otlp_agent_loadbalancer_resolutions_total", exporter="gateways", outcome="failed")
        == 2
    )
    await transport.close()


@pytest.mark.parametrize(
    ("endpoint", "ip", "expected"),
    [
        ("gw.obs.svc:4317", "10.1.2.3", "10.1.2.3:4317"),
        ("http://gw.obs.svc:4317", "10.1.2.3", "http://10.1.2.3:4317"),
        ("https://gw.example.com/otlp", "fd00::1", "https://[fd00::1]:443/otlp"),
        ("http://gw:4318/v1/traces", "10.0.0.9", "http://10.0.0.9:4318/v1/traces"),
    ],
)
def test_an_endpoint_keeps_its_scheme_port_and_path_at_each_address(
    endpoint: str, ip: str, expected: str
) -> None:
    assert resolver.target_of(endpoint).at(ip) == expected


def test_an_exporter_with_load_balancing_gets_the_load_balancing_transport() -> None:
    transport = factory.make_transport(exporter())
    assert isinstance(transport, LoadBalancingTransport)
