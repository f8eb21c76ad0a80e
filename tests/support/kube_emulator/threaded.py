"""``ThreadedKubeEmulator``: the emulator on its own event loop in a daemon thread, for sync tests.

All access to the emulator's state is marshalled onto its loop, so the store is only ever touched by
one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .server import KubeEmulator

T = TypeVar("T")


class ThreadedKubeEmulator:
    """``with ThreadedKubeEmulator() as kube: ...`` — same API as KubeEmulator, but synchronous."""

    def __init__(self, **kwargs: Any) -> None:
        self.emulator = KubeEmulator(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kube-emulator", daemon=True)

    def __enter__(self) -> ThreadedKubeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self.run(self.emulator.start())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.run(self.emulator.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60) -> T:
        """Run a coroutine on the emulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a plain function on the emulator's loop (thread-safe access to its state)."""

        async def wrapper() -> T:
            return fn(*args, **kwargs)

        return self.run(wrapper())

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def kubeconfig_path(self) -> pathlib.Path:
        return self.emulator.kubeconfig_path

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.call(self.emulator.get, resource, name, namespace)

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(self.emulator.list, resource, namespace)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.run(self.emulator.create(obj))

    def fail_next(
        self, method: str, path_regex: str, status: int = 500, times: int = 1, message: str | None = None
    ) -> None:
        self.call(self.emulator.fail_next, method, path_regex, status, times, message)

    def clear_faults(self) -> None:
        self.call(self.emulator.clear_faults)

    @property
    def requests(self) -> list[Any]:
        return self.call(lambda: list(self.emulator.requests))

    def set_status(
        self, resource: str, name: str, namespace: str | None, status: dict[str, Any]
    ) -> dict[str, Any]:
        return self.call(self.emulator.set_status, resource, name, namespace, status)

    def set_workload_ready(
        self,
        resource: str,
        name: str,
        namespace: str,
        ready: int | None = None,
    ) -> dict[str, Any]:
        return self.call(self.emulator.set_workload_ready, resource, name, namespace, ready)

    def compact(self) -> None:
        self.call(self.emulator.compact)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait (on the emulator's loop) until ``predicate()`` is truthy; it runs on the emulator thread."""
        return self.run(self.emulator.wait_for(predicate, timeout), timeout=timeout + 5)


_ = concurrent.futures  # run_coroutine_threadsafe returns a concurrent.futures.Future
