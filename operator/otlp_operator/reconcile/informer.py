"""An informer: one collection listed, then watched, kept in step in the operator's event loop.

Why not kopf's indexes: kopf pauses every watch of a replica that is not the active one (peering), and the
webhooks must answer correctly on every ready replica. So the pod webhook's caches are filled by these
informers, which run on every replica whatever kopf's peering says.

Each informer runs its blocking list/watch calls (`kube.Kube.collection_sync`, `watch_sync`) in its own
daemon thread and hands the results to the event loop (`call_soon_threadsafe`):

- `replace(items)` after every (re)list: the complete collection, so objects deleted while no watch was
  open are dropped too; `synced` is set after the first one;
- `apply(type, obj)` for every ADDED / MODIFIED / DELETED event.

A watch resumes from the last resourceVersion seen (bookmarks included); `410 Gone` or an ERROR event
relists; any other failure relists after `RETRY_DELAY` seconds. `stop()` shuts the open response down, so
the thread ends at once rather than at the watch's timeout.

An informer whose list or watch keeps failing answers from what it last saw, which grows stale. It
remembers since when it has been failing (`failing_since`, cleared by the next list that succeeds or
watch the server opens); `stale()` names it once that has lasted longer than `STALE_AFTER` seconds, so
readiness can turn the replica unready and the webhook Service sends reviews to a healthy one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from otlp_operator.reconcile import kube

#: Seconds a watch stays open before the server ends it and it is reopened (the real server's default range).
WATCH_TIMEOUT = 290
#: Seconds between attempts while the API server cannot be reached.
RETRY_DELAY = 1.0
#: Seconds of failing list/watch calls after which an informer's cache counts as stale.
STALE_AFTER = 30.0
_log = logging.getLogger(__name__)


class Relist(Exception):
    """The watch cannot go on from its resourceVersion (410 Gone, an ERROR event): list again."""


class Informer:
    """Keeps `replace` / `apply` fed with one collection (`path`, e.g. every namespace's pipelines)."""

    def __init__(
        self,
        client: kube.Kube,
        path: str,
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.synced = asyncio.Event()
        #: `clock()` at the first failure since the last success (None: not failing).
        self.failing_since: float | None = None
        self.last_error = ""
        self._clock = clock
        self._client = client
        self._replace = replace
        self._apply = apply
        self._loop = asyncio.get_running_loop()
        self._stopped = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread promptly (idempotent)."""
        self._stopped.set()
        response = self._response
        if response is not None:
            response.shutdown()

    def stale(self) -> str | None:
        """None while the cache follows the server; else what it has been failing with, and how long."""
        since = self.failing_since
        if since is None:
            return None
        failing_for = self._clock() - since
        if failing_for <= STALE_AFTER:
            return None
        return f"{self.path} (failing for {failing_for:.0f}s: {self.last_error})"

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                version = self._list()
                while not self._stopped.is_set():
                    version = self._watch(version)
            except Relist as why:
                _log.info("relisting %s: %s", self.path, why)
            except (kube.ApiError, ValueError) as exc:
                if not self._stopped.is_set():
                    _log.warning("watching %s failed (retrying): %s", self.path, exc)
                    self._failed(exc)
                    self._stopped.wait(RETRY_DELAY)
            except RuntimeError:  # the event loop closed under a thread not told to stop
                return

    def _list(self) -> str:
        found = self._client.collection_sync(self.path)
        self.failing_since = None
        self._loop.call_soon_threadsafe(self._replaced, list(found.get("items") or []))
        return str((found.get("metadata") or {}).get("resourceVersion") or "")

    def _replaced(self, items: list[dict[str, Any]]) -> None:
        self._replace(items)
        self.synced.set()

    def _watch(self, version: str) -> str:
        """Follow one watch to its end; the resourceVersion to resume from."""
        try:
            for event in self._client.watch_sync(self.path, version, WATCH_TIMEOUT, self._opened):
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    raise Relist(f"{obj.get('code')} {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    self._loop.call_soon_threadsafe(self._apply, kind, obj)
        except kube.ApiError as exc:
            if exc.status == 410:
                raise Relist(str(exc)) from exc
            raise
        finally:
            self._response = None
        return version

    def _failed(self, error: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = self._clock()
        self.last_error = str(error)

    def _opened(self, response: Any) -> None:
        self._response = response
        self.failing_since = None
        if self._stopped.is_set():
            response.shutdown()
