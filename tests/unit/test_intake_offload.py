"""Enrichment and routing of a request with many resource entries run on the worker thread, never on the
event loop, and hand the exporters exactly what running them inline would; a request of a few resources (the
common case) is enriched and routed inline."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from otlp_agent.api.spec import Signal
from otlp_agent.pipeline import enrich, intake, routing

from tests.support.placed_requests import request, serialize
from tests.support.recording_intake import TEAM_A, make, teams

ROUTES = {"routes": {"rules": [{"name": "team-a", "match": [TEAM_A], "exporters": ["a"]}], "default": ["b"]}}
ENRICHED = {**ROUTES, "processors": {"k8sAttributes": {"clusterName": "prod"}}}


def threads_of(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads `Enricher.apply` and `Router.route` run on, in call order."""
    seen: list[str] = []
    for cls, name in ((enrich.Enricher, "apply"), (routing.Router, "route")):
        real = getattr(cls, name)

        def recording(self: Any, *args: Any, _real: Any = real) -> Any:
            seen.append(threading.current_thread().name)
            return _real(self, *args)

        monkeypatch.setattr(cls, name, recording)
    return seen


@pytest.mark.parametrize(
    ("resources", "where"),
    [
        (2, "MainThread"),
        (intake.INLINE_RESOURCES, "MainThread"),
        (intake.INLINE_RESOURCES + 1, "otlp-per-item"),
    ],
)
async def test_requests_of_many_resources_are_enriched_and_routed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, resources: int, where: str
) -> None:
    data = teams(*["team-a" if index % 2 else "team-b" for index in range(resources)])
    threads = threads_of(monkeypatch)
    pipeline, handed = make(ENRICHED)
    answer = await pipeline.consume(Signal.traces, data, 2 * resources)
    assert answer.rejected == 0
    assert [thread.split("_")[0] for thread in threads] == [where, where]
    # Whichever thread did it, the exporters get the same: team a's resources, and the rest, each enriched.
    [(_, to_a, items_a)] = handed["a"]
    [(_, to_b, items_b)] = handed["b"]
    assert (items_a, items_b) == (2 * (resources // 2), 2 * ((resources + 1) // 2))
    assert (to_a.count(b"prod"), to_b.count(b"prod")) == (resources // 2, (resources + 1) // 2)


async def test_a_request_of_one_resource_larger_than_inline_bytes_is_routed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = request(Signal.traces, [[3000]])
    message.resource_spans[0].resource.attributes.add(key="k8s.namespace.name").value.string_value = "team-a"
    big = serialize(message)
    assert len(big) > intake.INLINE_BYTES
    threads = threads_of(monkeypatch)
    pipeline, handed = make(ROUTES)
    await pipeline.consume(Signal.traces, big, 3000)
    assert [thread.split("_")[0] for thread in threads] == ["otlp-per-item"]
    assert handed["a"] == [(Signal.traces, big, 3000)] and handed["b"] == []
