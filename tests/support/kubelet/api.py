"""The kubelet's API client: plain HTTP JSON calls to the API server (the emulator), as a kubelet and the
workload controllers make them (creates go through admission, so injection webhooks see the pods)."""

from __future__ import annotations

from typing import Any

import aiohttp

PATHS = {
    "pods": "/api/v1/namespaces/{ns}/pods",
    "services": "/api/v1/namespaces/{ns}/services",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "secrets": "/api/v1/namespaces/{ns}/secrets",
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "daemonsets": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "statefulsets": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "persistentvolumeclaims": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "endpoints": "/api/v1/namespaces/{ns}/endpoints",
}
ALL = {kind: path.replace("/namespaces/{ns}", "") for kind, path in PATHS.items()}


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text[:300]}")
        self.status = status


class Api:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        assert self._session is not None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self._session.request(method, self.url + path, json=body, headers=headers) as answer:
            text = await answer.text()
            if answer.status >= 400:
                raise ApiError(answer.status, text)
            return await answer.json(content_type=None) if text else {}

    async def list(self, kind: str) -> list[dict[str, Any]]:
        return list((await self._call("GET", ALL[kind])).get("items") or [])

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call("GET", f"{PATHS[kind].format(ns=namespace)}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            "POST", PATHS[kind].format(ns=obj["metadata"]["namespace"]), obj
        )
        return created

    async def delete(self, kind: str, namespace: str, name: str, grace: int | None = None) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace  # type: ignore[assignment]
        try:
            await self._call("DELETE", f"{PATHS[kind].format(ns=namespace)}/{name}", body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def replace(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        await self._call("PUT", f"{PATHS[kind].format(ns=meta['namespace'])}/{meta['name']}", obj)

    async def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = f"{PATHS[kind].format(ns=namespace)}/{name}/status"
        try:
            await self._call("PATCH", path, {"status": status}, "application/merge-patch+json")
        except ApiError as exc:
            if exc.status != 404:  # deleted meanwhile
                raise
