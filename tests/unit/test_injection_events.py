"""The pod webhook's Warning Events cost bounded memory and tasks on each replica: one per object and reason
a minute, the rate limit forgets what is older than that, and a flood of refused pods never has more than
MAX_EVENTS_IN_FLIGHT posts under way (the rest are dropped and counted)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from otlp_operator.edge import injection_handlers, injection_state, settings
from otlp_operator.injection import catalog, markers

from tests.support.fake_clock import FakeClock
from tests.support.injection_inputs import bare_pod

BOUND = injection_handlers.MAX_EVENTS_IN_FLIGHT


class SlowEvents:
    """An API client whose Event posts hang until released (an API server under load)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []
        self.release = asyncio.Event()

    async def post_event(self, regarding: dict[str, Any], warning: bool, reason: str, *_: Any) -> None:
        self.posted.append((regarding["metadata"]["name"], reason))
        await self.release.wait()


def state_with(client: SlowEvents, clock: FakeClock) -> injection_state.Injection:
    config = settings.OperatorConfig(agent_image="img", injection=True)
    return injection_state.Injection(config, client=client, catalog=catalog.Catalog(), clock=clock)  # type: ignore[arg-type]


def refuse(state: injection_state.Injection, name: str) -> list[str]:
    """A bare pod named `name` asking for a pipeline that does not exist (UnknownPipeline)."""
    pod = bare_pod(name)
    pod["metadata"]["annotations"] = {markers.INJECT_ANNOTATION: "missing"}
    warnings: list[str] = []
    assert injection_handlers.admit(state, pod, warnings, dryrun=False) is None
    return warnings


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def dropped(state: injection_state.Injection) -> float:
    return state.metrics.value("otlp_operator_events_dropped_total", reason="UnknownPipeline")


async def test_a_flood_of_refused_pods_never_has_more_than_the_bound_of_event_posts_under_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, clock = SlowEvents(), FakeClock()
    state = state_with(client, clock)
    for n in range(BOUND + 50):
        assert refuse(state, f"pod-{n}")  # every pod still gets its admission warning
        assert len(state.events) <= BOUND
    await settle()
    assert len(client.posted) == BOUND and len(state.events) == BOUND
    assert dropped(state) == 50
    assert sum("dropping them" in r.getMessage() for r in caplog.records) == 1  # not one line per Event
    client.release.set()
    await settle()
    assert not state.events
    refuse(state, "after-the-flood")
    await settle()
    assert client.posted[-1] == ("after-the-flood", "UnknownPipeline")


async def test_the_rate_limit_forgets_objects_older_than_the_interval() -> None:
    client, clock = SlowEvents(), FakeClock()
    client.release.set()
    state = state_with(client, clock)
    for n in range(BOUND):
        refuse(state, f"pod-{n}")
        await settle()
    assert len(state.posted) == BOUND
    refuse(state, "pod-0")  # again within the minute: no second Event
    await settle()
    assert len(client.posted) == BOUND
    clock.now += injection_handlers.EVENT_INTERVAL
    refuse(state, "pod-0")  # a minute later: posted again, and the others are forgotten
    await settle()
    assert client.posted[-1] == ("pod-0", "UnknownPipeline") and len(client.posted) == BOUND + 1
    assert list(state.posted) == [("Pod", "shop", "pod-0", "UnknownPipeline")]


async def test_the_objects_remembered_for_the_rate_limit_are_bounded_within_one_interval() -> None:
    client, clock = SlowEvents(), FakeClock()
    client.release.set()
    state = state_with(client, clock)
    limit = injection_handlers.MAX_EVENTS_REMEMBERED
    for n in range(limit + 10):
        refuse(state, f"pod-{n}")
        if n % BOUND == 0:
            await settle()
        clock.now += 1e-4  # all within one interval
    await settle()
    assert len(state.posted) == limit
    assert dropped(state) == 10
