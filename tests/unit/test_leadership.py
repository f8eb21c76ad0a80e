"""kopf's peering rule as the operator's own loops apply it (`edge.leadership.leads`), and what a paused
replica forgets (`handlers.forget_while_paused`)."""

from __future__ import annotations

import datetime
from typing import Any

from otlp_operator import naming
from otlp_operator.edge import handlers, leadership
from otlp_operator.reconcile import config_rollout, reconciler

NOW = datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 30) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def peering(**peers: dict[str, Any] | None) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": peers}


def test_a_live_peer_with_a_higher_priority_pauses_and_a_dead_one_does_not() -> None:
    assert leadership.leads([peering(me=peer(100, 1))], 100, NOW)
    assert not leadership.leads([peering(me=peer(100, 1), other=peer(200, 29))], 100, NOW)
    assert leadership.leads([peering(me=peer(100, 1), other=peer(200, 31))], 100, NOW)
    assert leadership.leads([peering(me=peer(200, 1), other=peer(100, 1))], 200, NOW)


def test_a_tie_on_the_highest_priority_pauses_as_kopf_does() -> None:
    assert not leadership.leads([peering(a=peer(100, 1), b=peer(100, 1))], 100, NOW)


def test_every_peering_object_must_agree_and_departed_peers_do_not_count() -> None:
    first = peering(me=peer(100, 1), gone=None)  # kopf removes its entry on a clean exit
    second = peering(me=peer(100, 1), other=peer(300, 5))
    assert leadership.leads([first], 100, NOW)
    assert not leadership.leads([first, second], 100, NOW)


def test_an_entry_without_a_keep_alive_time_counts_as_just_seen() -> None:
    assert not leadership.leads([peering(other={"priority": 500})], 100, NOW)


def test_a_paused_replica_forgets_its_follow_ups_rollouts_and_applied_children() -> None:
    ctx = reconciler.Context(client=None, agent_image="agent:1")  # type: ignore[arg-type]
    key = naming.PipelineKey("observability", "gateway")
    child = {"kind": "ConfigMap", "metadata": {"namespace": "observability", "name": "gateway-config"}}
    ctx.index.remember(key, [child])
    ctx.followups[key] = 12.0
    ctx.rollouts.confirmed[key] = ("abc", frozenset({"uid"}))
    assert ctx.index.owner_to_reconcile("DELETED", child) == key

    handlers.forget_while_paused(ctx)

    assert ctx.followups == {}
    assert ctx.rollouts == config_rollout.Memory()
    assert ctx.index.owner_to_reconcile("DELETED", child) is None  # the leader owns its children now
    assert ctx.index.pipelines() == [key]  # still drift-checked if this replica leads again
