"""Watch streams: chunked JSON lines (`{"type": ..., "object": ...}`) with Content-Type application/json.

Semantics of the real API server that clients depend on:
* no resourceVersion (or "0"): synthetic ADDED events for the current state, then live changes;
* resourceVersion=N: replay of every change after N from the history, then live changes; a version older
  than the retained history yields an ERROR event with a 410 Expired Status;
* selectors apply to both old and new state, so an object that stops matching is seen as DELETED and one
  that starts matching as ADDED;
* sendInitialEvents=true ends the initial ADDED events with a BOOKMARK annotated
  `k8s.io/initial-events-end`; allowWatchBookmarks=true adds periodic BOOKMARKs;
* timeoutSeconds closes the stream (cleanly) after that many seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import errors, selectors
from .apiserver import ApiServer
from .resources import ResourceType
from .store import Change


class WatchParams:
    def __init__(self, query: Any, rt: ResourceType, namespace: str | None) -> None:
        by_labels = selectors.label_predicate(query.get("labelSelector"))
        by_fields = selectors.field_predicate(query.get("fieldSelector"), rt.plural)
        self.matches: Callable[[dict[str, Any]], bool] = lambda obj: (
            (namespace is None or obj["metadata"].get("namespace") == namespace)
            and by_labels(obj)
            and by_fields(obj)
        )
        rv = query.get("resourceVersion") or ""
        self.send_initial = query.get("sendInitialEvents") == "true"
        self.since = None if rv in ("", "0") or self.send_initial else _parse_rv(rv)
        self.bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = query.get("timeoutSeconds")
        self.timeout = float(timeout) if timeout else None


def _parse_rv(rv: str) -> int:
    if not rv.isdigit():
        raise errors.bad_request(f'invalid resource version: "{rv}"')
    return int(rv)


def translate(change: Change, matches: Callable[[dict[str, Any]], bool]) -> str | None:
    """The event type this watcher sees for a change, given its selectors (None: not at all)."""
    now_matches = change.type != "DELETED" and matches(change.obj)
    was_matching = change.old is not None and matches(change.old if change.type != "DELETED" else change.obj)
    if change.type == "DELETED":
        return "DELETED" if was_matching else None
    if now_matches:
        return "MODIFIED" if was_matching else "ADDED"
    return "DELETED" if was_matching else None


class Watcher:
    def __init__(
        self,
        api: ApiServer,
        rt: ResourceType,
        params: WatchParams,
        closing: asyncio.Event,
        bookmark_interval: float,
    ) -> None:
        self.api, self.rt, self.params = api, rt, params
        self.closing, self.bookmark_interval = closing, bookmark_interval

    async def serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        store = self.api.store
        try:
            backlog, queue = store.subscribe(self.params.since)
        except LookupError:
            await response.prepare(request)
            gone = errors.gone(f"too old resource version: {self.params.since} ({store.oldest_rv})")
            await self._send(response, "ERROR", gone.status())
            return response
        try:
            await response.prepare(request)
            if self.params.since is None:
                await self._initial(response)
            for change in backlog:
                await self._emit(response, change)
            await self._follow(response, queue)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(queue)
        return response

    async def _initial(self, response: web.StreamResponse) -> None:
        for obj in self.api.store.list(self.rt.storage_key):
            if self.params.matches(obj):
                await self._send(response, "ADDED", self.api.render(self.rt, obj))
        if self.params.send_initial:
            await self._bookmark(response, {"k8s.io/initial-events-end": "true"})

    async def _follow(self, response: web.StreamResponse, queue: asyncio.Queue[Change]) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if self.params.timeout is None else loop.time() + self.params.timeout
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while not self.closing.is_set():
                wait = self.bookmark_interval if self.params.bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    wait = left if wait is None else min(wait, left)
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, closing}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    await self._emit(response, getter.result())
                    continue
                getter.cancel()
                if not done and self.params.bookmarks:
                    await self._bookmark(response, None)
        finally:
            closing.cancel()

    async def _emit(self, response: web.StreamResponse, change: Change) -> None:
        if change.storage != self.rt.storage_key:
            return
        kind = translate(change, self.params.matches)
        if kind is not None:
            await self._send(response, kind, self.api.render(self.rt, change.obj))

    async def _bookmark(self, response: web.StreamResponse, annotations: dict[str, str] | None) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(self.api.store.rv)}
        if annotations:
            meta["annotations"] = annotations
        await self._send(
            response, "BOOKMARK", {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        )

    @staticmethod
    async def _send(response: web.StreamResponse, kind: str, obj: dict[str, Any]) -> None:
        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
