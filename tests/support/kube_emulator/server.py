"""The emulator process: an aiohttp server on 127.0.0.1 (free port) plus a kubeconfig for it.

``KubeEmulator`` is an async context manager for async tests; ``ThreadedKubeEmulator`` runs the same
thing on an event loop in a background thread for sync tests (and for subprocess clients like kubectl).
Both expose ``url``, ``kubeconfig_path`` and direct, assertion-friendly access to stored objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from aiohttp import web

from tests.support import network

from . import errors, faults, handlers
from .apiserver import ApiServer, Options
from .resources import Registry
from .store import Store

T = TypeVar("T")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def kubeconfig(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kube-emulator",
        "preferences": {},
        "clusters": [{"name": "kube-emulator", "cluster": {"server": url}}],
        "users": [{"name": "kube-emulator", "user": {"token": "kube-emulator-token"}}],
        "contexts": [
            {
                "name": "kube-emulator",
                "context": {"cluster": "kube-emulator", "user": "kube-emulator", "namespace": "default"},
            }
        ],
    }


class KubeEmulator:
    """A Kubernetes API emulator: ``async with KubeEmulator() as kube: ...``."""

    def __init__(
        self,
        *,
        history_limit: int = 10_000,
        bookmark_interval: float = 5.0,
        namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
    ) -> None:
        self.history_limit = history_limit
        self.bookmark_interval = bookmark_interval
        self._initial_namespaces = namespaces
        self.faults = faults.FaultPlan()
        self.url = ""
        self.kubeconfig_path = pathlib.Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> KubeEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.closing = asyncio.Event()
        self.registry = Registry()
        self.store = Store(self.history_limit)
        self.api = ApiServer(self.registry, self.store)
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.add_routes(handlers.Handlers(self.api, self).routes())
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        port = await network.serve(self._runner)
        self.url = f"http://127.0.0.1:{port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        self.kubeconfig_path = pathlib.Path(self._tmp.name) / "kubeconfig"
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig(self.url)))
        for name in self._initial_namespaces:
            await self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.closing.set()
        await self._runner.cleanup()
        self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            self.faults.check(request.method, request.path_qs)
            response: web.StreamResponse = await handler(request)
        except errors.ApiError as exc:
            response = handlers.error_response(exc)
        except web.HTTPException:
            raise
        except Exception as exc:  # report as the API server would, and keep serving
            response = handlers.error_response(errors.internal(f"{type(exc).__name__}: {exc}"))
        self.faults.record(
            request.method, request.path, request.query_string, request.content_type, response.status
        )
        return response

    # -- direct access for tests ------------------------------------------------------------------------

    def fail_next(
        self, method: str, path_regex: str, status: int = 500, times: int = 1, message: str | None = None
    ) -> None:
        self.faults.fail_next(method, path_regex, status, times, message)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def requests(self) -> list[faults.RecordedRequest]:
        return self.faults.requests

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """A stored object by resource ("deployments", "deployments.apps", kind or short name), or None."""
        rt = self.registry.find(resource)
        obj = self.store.get(rt.storage_key, namespace or "" if rt.namespaced else "", name)
        return None if obj is None else self.api.render(rt, obj)

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rt = self.registry.find(resource)
        return [self.api.render(rt, o) for o in self.store.list(rt.storage_key, namespace)]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as an API client would (admission, validation and all)."""
        group, _, version = obj["apiVersion"].rpartition("/")
        rt = next(
            t for t in self.registry.types() if (t.group, t.version, t.kind) == (group, version, obj["kind"])
        )
        return await self.api.create(rt, obj["metadata"].get("namespace", "default"), obj, Options())

    def set_status(
        self, resource: str, name: str, namespace: str | None, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge ``status`` into an object's status as a controller would (new resourceVersion + event)."""
        rt = self.registry.find(resource)
        current = self.store.get(rt.storage_key, namespace or "" if rt.namespaced else "", name)
        if current is None:
            raise errors.not_found(rt.plural, name, rt.group)
        new = copy.deepcopy(current)
        new["status"] = {**(new.get("status") or {}), **status}
        return self.api.render(rt, self.store.write(rt.storage_key, new))

    def set_workload_ready(
        self,
        resource: str,
        name: str,
        namespace: str,
        ready: int | None = None,
    ) -> dict[str, Any]:
        """Report a Deployment/StatefulSet/ReplicaSet/DaemonSet as rolled out, ``ready`` of its replicas ready
        (default: all), as its controller would."""
        obj = self.get(resource, name, namespace)
        if obj is None:
            raise errors.not_found(resource, name)
        from . import workloads

        return self.set_status(resource, name, namespace, workloads.status_for(obj, ready))

    def compact(self) -> None:
        """Drop the watch history: resuming from any older resourceVersion now gets 410 Gone."""
        self.store.compact()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every store change)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            changed = self.store.changed
            result = predicate()
            if result:
                return result
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
