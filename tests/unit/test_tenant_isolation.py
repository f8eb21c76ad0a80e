"""Tenants are isolated at admission: a full exporter never blocks the parts of a request bound for the
others, the client is told to retry without hearing any exporter's name, and its retry is taken only
where it was not taken before (fingerprints), including when the first attempt is still waiting on a
batch. A part larger than its exporter's whole queue is refused for good, not retried for ever.

Exporter lanes are real; where a backend is needed it is a GatedTransport the test opens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.exporter.lane import Room
from otlp_agent.otlp import errors
from otlp_agent.pipeline import fingerprints
from otlp_agent.pipeline.intake import Intake
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.fake_clock import FakeClock
from tests.support.gated_transport import GatedTransport
from tests.support.placed_requests import request, serialize
from tests.support.waiting import eventually

ROUTES = {
    "rules": [
        {"name": "team-a", "match": [{"attribute": "team", "equals": "a"}], "exporters": ["a"]},
        {"name": "team-b", "match": [{"attribute": "team", "equals": "b"}], "exporters": ["b"]},
    ]
}


def teams(*names: str, spans: int = 2, salt: str = "") -> bytes:
    """A request with one resource per team name (attribute team=<name>), `spans` spans each."""
    message = request(Signal.traces, [[spans] for _ in names])
    for entry, name in zip(message.resource_spans, names, strict=True):
        entry.resource.attributes.append(
            common_pb2.KeyValue(key="team", value=common_pb2.AnyValue(string_value=name))
        )
        if salt:
            entry.schema_url = salt
    return serialize(message)


class Recorded:
    """A pipeline whose lanes record what they accept (not started: nothing is exported)."""

    def __init__(self, exporters: list[dict[str, Any]], routes: dict[str, Any] | None = ROUTES) -> None:
        body: dict[str, Any] = {"exporters": exporters}
        if routes is not None:
            body["routes"] = routes
        self.pipeline = Intake(spec.OTLPPipelineSpec.model_validate(body), AgentMetrics())
        self.handed: dict[str, list[int]] = {e.name: [] for e in self.pipeline.exporters}
        self.room = {e.name: Room.yes for e in self.pipeline.exporters}
        for lane in self.pipeline.exporters:
            lane.room_for = lambda size, items, name=lane.name: self.room[name]  # type: ignore[method-assign]
            lane.accept = self._accept(lane.name)  # type: ignore[method-assign]

    def _accept(self, name: str) -> Any:
        async def accept(signal: Signal, data: bytes, items: int) -> list[Any]:
            self.handed[name].append(items)
            return []

        return accept

    def metric(self, name: str, **labels: str) -> float:
        return self.pipeline.metrics.value(name, **labels)


def two_teams(**extra: Any) -> Recorded:
    return Recorded([{"name": "a", "debug": {}, **extra}, {"name": "b", "debug": {}, **extra}])


async def test_a_full_exporter_does_not_keep_the_other_exporters_part_out() -> None:
    agent = two_teams()
    agent.room["b"] = Room.full
    with pytest.raises(errors.ReceiveError) as refused:
        await agent.pipeline.consume(Signal.traces, teams("a", "b"), 4)
    assert agent.handed == {"a": [2], "b": []}, "team a's part is in; team b's client keeps its data"
    answer = refused.value
    assert (answer.http_status, answer.retry_after, answer.reason) == (503, 1.0, "queue_full")
    assert "exporter a" not in answer.message and "exporter b" not in answer.message
    assert "will not be taken twice" in answer.message


async def test_the_retry_is_taken_only_by_the_exporters_that_did_not_take_it_before() -> None:
    agent = two_teams()
    agent.room["b"] = Room.full
    body = teams("a", "b")
    for _ in range(3):  # b stays full for a while: the client keeps retrying
        with pytest.raises(errors.ReceiveError):
            await agent.pipeline.consume(Signal.traces, body, 4)
    agent.room["b"] = Room.yes
    answer = await agent.pipeline.consume(Signal.traces, body, 4)
    assert answer.rejected == 0
    assert agent.handed == {"a": [2], "b": [2]}, "each part taken exactly once"
    assert agent.metric("otlp_agent_deduplicated_items_total", exporter="a", signal="traces") == 6
    assert agent.metric("otlp_agent_routed_items_total", route="team-b", signal="traces") == 2


async def test_a_different_request_is_never_mistaken_for_a_retry() -> None:
    agent = two_teams()
    agent.room["b"] = Room.full
    with pytest.raises(errors.ReceiveError):
        await agent.pipeline.consume(Signal.traces, teams("a", "b"), 4)
    agent.room["b"] = Room.yes
    await agent.pipeline.consume(Signal.traces, teams("a", "b", salt="other"), 4)
    assert agent.handed == {"a": [2, 2], "b": [2]}


async def test_the_same_bytes_from_another_tenant_are_not_a_retry() -> None:
    agent = two_teams()
    agent.room["b"] = Room.full
    body = teams("a", "b")
    with pytest.raises(errors.ReceiveError):
        await agent.pipeline.consume(Signal.traces, body, 4, tenant="team-x")
    agent.room["b"] = Room.yes
    await agent.pipeline.consume(Signal.traces, body, 4, tenant="team-y")
    assert agent.handed["a"] == [2, 2]


async def test_a_request_accepted_whole_is_never_hashed() -> None:
    agent = two_teams()
    for _ in range(5):
        await agent.pipeline.consume(Signal.traces, teams("a", "b"), 4)
    assert not agent.pipeline.fingerprints.active, "the fast path remembers nothing"


async def test_without_routes_a_full_exporter_does_not_keep_the_data_from_the_others() -> None:
    agent = Recorded([{"name": "a", "debug": {}}, {"name": "b", "debug": {}}], routes=None)
    agent.room["a"] = Room.full
    body = teams("a", "b")
    with pytest.raises(errors.ReceiveError):
        await agent.pipeline.consume(Signal.traces, body, 4)
    agent.room["a"] = Room.yes
    await agent.pipeline.consume(Signal.traces, body, 4)
    assert agent.handed == {"a": [4], "b": [4]}


async def test_a_part_larger_than_its_exporters_whole_queue_is_refused_for_good_and_the_rest_taken() -> None:
    agent = two_teams()
    agent.room["b"] = Room.never
    answer = await agent.pipeline.consume(Signal.traces, teams("a", "b", "b"), 6)
    assert agent.handed == {"a": [2], "b": []}
    assert answer.rejected == 4, "partial success: not retried by OTLP clients"
    assert "more than an exporter's queue can ever hold" in answer.message
    assert "exporter" not in answer.message.replace("an exporter's", "")


async def test_a_request_nothing_of_which_could_ever_fit_is_refused_non_retryably() -> None:
    agent = two_teams()
    agent.room["a"] = agent.room["b"] = Room.never
    with pytest.raises(errors.ReceiveError) as refused:
        await agent.pipeline.consume(Signal.traces, teams("a", "b"), 4)
    assert refused.value.http_status == 413 and refused.value.retry_after is None
    assert refused.value.grpc_code.name == "RESOURCE_EXHAUSTED", "without RetryInfo: not retryable (OTLP)"


async def test_busy_now_wins_over_too_big_ever_so_the_client_retries_what_can_still_get_in() -> None:
    agent = Recorded([{"name": e, "debug": {}} for e in "abc"], routes=None)
    agent.room.update(b=Room.full, c=Room.never)
    body = teams("a")
    with pytest.raises(errors.ReceiveError) as refused:
        await agent.pipeline.consume(Signal.traces, body, 2)
    assert refused.value.retry_after == 1.0
    agent.room["b"] = Room.yes
    answer = await agent.pipeline.consume(Signal.traces, body, 2)
    assert answer.rejected == 2 and agent.handed == {"a": [2], "b": [2], "c": []}


# -- real lanes: the queue's own bound, and clients that wait (endToEnd) ---------------------------------


def started(exporters: list[dict[str, Any]], transports: dict[str, GatedTransport]) -> Intake:
    body = {"processors": {"batch": {"timeout": "5ms"}}, "exporters": exporters, "routes": ROUTES}
    return Intake(spec.OTLPPipelineSpec.model_validate(body), AgentMetrics(), transports)


async def test_with_real_queues_team_a_keeps_flowing_while_team_bs_backend_is_down() -> None:
    down, up = GatedTransport(), GatedTransport()
    up.gate.set()
    small = {"maxItems": 4, "consumers": 1}
    pipeline = started(
        [{"name": "a", "debug": {}}, {"name": "b", "debug": {}, "queue": small}], {"a": up, "b": down}
    )
    await pipeline.start()
    try:
        refusals = 0
        for round_ in range(6):
            try:
                await pipeline.consume(Signal.traces, teams("a", "b", salt=str(round_)), 4)
            except errors.ReceiveError:
                refusals += 1
        assert refusals == 4, "b holds 2 requests' worth (in flight and queued), then refuses"
        await pipeline.flush()
        await eventually(lambda: up.items == 12, what="every request's team-a part exported")
        assert down.items == 0
    finally:
        down.gate.set()
        await pipeline.stop()


async def test_an_end_to_end_retry_waits_on_the_first_attempts_batch_instead_of_queueing_it_again() -> None:
    backend = GatedTransport()
    pipeline = started([{"name": "a", "debug": {}, "delivery": "endToEnd"}], {"a": backend})
    await pipeline.start()
    try:
        body = teams("a")
        first = asyncio.create_task(pipeline.consume(Signal.traces, body, 2))
        await eventually(lambda: backend.waiting == 1, what="the batch at the (stuck) backend")
        first.cancel()  # the client gave up waiting; it sends the request again
        retry = asyncio.create_task(pipeline.consume(Signal.traces, body, 2))
        await eventually(
            lambda: (
                pipeline.metrics.value("otlp_agent_deduplicated_items_total", exporter="a", signal="traces")
                == 2
            ),
            what="the retry recognised",
        )
        assert not retry.done(), "the retry waits for the backend like the first attempt did"
        backend.gate.set()
        assert (await asyncio.wait_for(retry, timeout=10)).rejected == 0
        assert backend.items == 2, "delivered once"
    finally:
        backend.gate.set()
        await pipeline.stop()


# -- the fingerprint table ------------------------------------------------------------------------------


def test_fingerprints_are_forgotten_after_the_window() -> None:
    clock = FakeClock()
    table = fingerprints.Fingerprints(window=300.0, clock=clock)
    key = table.key(Signal.traces, None, b"request")
    table.remember(key, [("a", ())])
    clock.now = 299.0
    assert table.taken(key) == {"a": ()}
    clock.now = 301.0
    assert table.taken(key) == {} and not table.active


def test_fingerprints_keep_at_most_max_entries_dropping_the_oldest() -> None:
    table = fingerprints.Fingerprints(max_entries=3, clock=FakeClock())
    keys = [table.key(Signal.logs, None, bytes([n])) for n in range(5)]
    for key in keys:
        table.remember(key, [("a", ())])
    assert len(table) == 3
    assert [bool(table.taken(key)) for key in keys] == [False, False, True, True, True]


async def test_an_exporter_whose_batch_failed_must_take_the_part_again() -> None:
    table = fingerprints.Fingerprints(clock=FakeClock())
    key = table.key(Signal.traces, "t", b"request")
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(errors.refused("not delivered", 1.0, "not_delivered"))
    delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    delivered.set_result(None)
    table.remember(key, [("a", (failed,)), ("b", (delivered,))])
    assert table.taken(key) == {"b": (delivered,)}
