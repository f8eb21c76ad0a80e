"""The object store: objects per resource, one global monotonic resourceVersion, and the change history.

Every write gets the next resourceVersion and is appended to a bounded history that watches replay from
(a watch asking for a version older than the retained history gets 410 Gone). Subscribers receive each
change as it happens. The store itself knows nothing of API semantics; see ``apiserver``.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import datetime
from typing import Any

StorageKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclasses.dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    storage: StorageKey
    obj: dict[str, Any]
    old: dict[str, Any] | None


def now() -> str:
    """A metav1.Time timestamp (RFC 3339, seconds) for creationTimestamp/deletionTimestamp."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata", {})
    return (meta.get("namespace") or "", meta["name"])


class Store:
    def __init__(self, history_limit: int = 10_000) -> None:
        self.rv = 1000
        self._objects: dict[StorageKey, dict[ObjectKey, dict[str, Any]]] = collections.defaultdict(dict)
        self._uids: dict[str, tuple[StorageKey, ObjectKey]] = {}
        self.history: collections.deque[Change] = collections.deque(maxlen=history_limit)
        self.oldest_rv = self.rv  # changes after this version are all still in the history
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._changed = asyncio.Event()

    def get(self, storage: StorageKey, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[storage].get((namespace, name))

    def by_uid(self, uid: str) -> tuple[StorageKey, dict[str, Any]] | None:
        where = self._uids.get(uid)
        if where is None:
            return None
        return where[0], self._objects[where[0]][where[1]]

    def list(self, storage: StorageKey, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self._objects[storage]
        return [items[key] for key in sorted(items) if namespace is None or key[0] == namespace]

    def all_objects(self) -> list[tuple[StorageKey, dict[str, Any]]]:
        return [
            (storage, obj) for storage, items in list(self._objects.items()) for obj in list(items.values())
        ]

    def in_namespace(self, namespace: str) -> list[tuple[StorageKey, dict[str, Any]]]:
        return [(s, o) for s, o in self.all_objects() if o["metadata"].get("namespace") == namespace]

    def write(self, storage: StorageKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new or changed object under the next resourceVersion; returns the stored copy."""
        key = object_key(obj)
        old = self._objects[storage].get(key)
        stored = copy.deepcopy(obj)
        self.rv += 1
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self._objects[storage][key] = stored
        self._uids[stored["metadata"]["uid"]] = (storage, key)
        self._record(Change(self.rv, "MODIFIED" if old else "ADDED", storage, stored, old))
        return stored

    def remove(self, storage: StorageKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Delete an object; its final state (with a new resourceVersion) goes to watchers as DELETED."""
        key = object_key(obj)
        old = self._objects[storage].pop(key)
        self._uids.pop(old["metadata"]["uid"], None)
        final = copy.deepcopy(old)
        self.rv += 1
        final["metadata"]["resourceVersion"] = str(self.rv)
        self._record(Change(self.rv, "DELETED", storage, final, old))
        return final

    def _record(self, change: Change) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0].rv
        self.history.append(change)
        for queue in self._subscribers:
            queue.put_nowait(change)
        self._changed.set()
        self._changed = asyncio.Event()

    def compact(self) -> None:
        """Forget all history, like etcd compaction: older resourceVersions now answer 410 Gone."""
        self.history.clear()
        self.oldest_rv = self.rv

    def subscribe(self, since: int | None) -> tuple[list[Change], asyncio.Queue[Change]]:
        """Changes after ``since`` (None: none) plus a queue of the ones to come; raises LookupError if
        ``since`` is older than the retained history."""
        if since is not None and since < self.oldest_rv:
            raise LookupError(since)
        backlog = [c for c in self.history if since is not None and c.rv > since]
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.add(queue)
        return backlog, queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        self._subscribers.discard(queue)

    @property
    def changed(self) -> asyncio.Event:
        """An event set by the next change; take it *before* checking a condition to miss no change."""
        return self._changed
