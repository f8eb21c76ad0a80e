"""Whether this replica is the one kopf peering lets handle pipelines, for the operator's own loops.

kopf pauses the resource handlers of a replica that is not the active one, but not the tasks the startup
handler starts (the drift check and the config follow-ups, `handlers`), and it keeps its pause state to
itself (a toggle inside `kopf.spawn_tasks`, reachable by no handler argument or setting). So before each
pass those loops read the peering objects themselves (one list call) and apply kopf's own rule (kopf 1.45,
`_core/engines/peering.py`, `process_peering_event`): a replica is paused while a live peer (last
keep-alive plus its lifetime still in the future) has a higher priority, or another live peer has the same
one; and while the peering object it keeps alive is missing (kopf's mandatory peering stays paused).

- With `--all-namespaces`, the one ClusterKopfPeering `Peering.name`; with exact `--namespace`s, the
  KopfPeering of that name in each (all must agree: kopf pauses while any one says so); with namespace
  globs, every KopfPeering of that name in a namespace the globs match (a cluster-wide list).
- kopf does not tell its handlers its peering identity, so peers are told apart by priority: this replica
  is the entry with its own priority (priorities differ by design, `settings.default_priority`); two live
  entries with that priority are a tie, which pauses, as kopf does.

The scope, name, priority and whether peering is mandatory are read from kopf's own settings after
`kopf.run` has set them, so they are the ones kopf uses. The answer can differ from kopf's for the time
one watch event takes to reach kopf (both read the same object); the loops re-check before every pass.
Standalone, this replica always leads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kopf

from otlp_operator.reconcile import kube

PEERINGS = kube.Resource("kopf.dev", "v1", "kopfpeerings")
CLUSTER_PEERINGS = kube.Resource("kopf.dev", "v1", "clusterkopfpeerings")
_log = logging.getLogger(__name__)


def leads(peerings: Iterable[Mapping[str, Any]], priority: int, now: datetime.datetime) -> bool:
    """kopf's rule over every peering object that applies: no live peer above `priority`, no tie."""
    for peering in peerings:
        live = [
            int(peer.get("priority", 0))
            for peer in ((peering.get("status") or {}).values())
            if isinstance(peer, Mapping) and _alive(peer, now)
        ]
        if any(p > priority for p in live) or sum(p == priority for p in live) > 1:
            return False
    return True


def _alive(peer: Mapping[str, Any], now: datetime.datetime) -> bool:
    seen = peer.get("lastseen")
    if not seen:
        return True  # kopf counts an entry without a keep-alive time as just seen
    last = datetime.datetime.fromisoformat(str(seen).replace("Z", "+00:00"))
    if last.tzinfo is None:
        last = last.replace(tzinfo=datetime.UTC)
    return last + datetime.timedelta(seconds=int(peer.get("lifetime", 60))) > now


@dataclasses.dataclass
class Leadership:
    """Reads the peering objects kopf uses: `settings` are kopf's own (their `peering` as `kopf.run` set
    it, scope included), `namespaces` the watched namespaces (globs allowed; empty: every namespace)."""

    client: kube.Kube
    settings: kopf.OperatorSettings
    namespaces: tuple[str, ...]
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    leading: bool | None = None

    @property
    def peering(self) -> Any:  # kopf's PeeringSettings (not exported by name)
        return self.settings.peering

    async def check(self) -> bool:
        """Whether this replica leads now (raises `kube.ApiError` when the objects cannot be read); logs
        each change."""
        now_leads = self.peering.standalone or await self._read()
        if now_leads != self.leading and not self.peering.standalone:
            _log.info(
                "peering %s: this replica %s",
                self.peering.name,
                "leads: the drift check and config follow-ups run here"
                if now_leads
                else "is paused: its drift check and config follow-ups stop, and it forgets what they knew",
            )
        self.leading = now_leads
        return now_leads

    async def _read(self) -> bool:
        name = str(self.peering.name)
        objects: list[Mapping[str, Any]] = []
        if self.peering.clusterwide:
            objects = _named(await self._list(CLUSTER_PEERINGS.path("")), name)
            wanted = 1
        elif self.namespaces and all(not set(n) & set("*?[") for n in self.namespaces):
            for namespace in self.namespaces:
                objects += _named(await self._list(PEERINGS.path(namespace)), name)
            wanted = len(self.namespaces)
        else:
            found = _named(await self._list(PEERINGS.path("")), name)
            patterns = self.namespaces or ("*",)
            objects = [o for o in found if any(fnmatch.fnmatchcase(_namespace(o), p) for p in patterns)]
            wanted = len(objects)
        if len(objects) < wanted or not objects:
            return not self.peering.mandatory  # mandatory peering: kopf stays paused without its object
        return leads(objects, self.peering.priority, self.clock())

    async def _list(self, path: str) -> list[Mapping[str, Any]]:
        found = await asyncio.to_thread(self.client.collection_sync, path)
        return list(found.get("items") or [])


def _named(items: list[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [item for item in items if (item.get("metadata") or {}).get("name") == name]


def _namespace(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("namespace") or "")
