"""Watch semantics of the emulator over raw HTTP: initial state, resume, 410 Gone, selectors, bookmarks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.kube_emulator import KubeEmulator

CM_PATH = "/api/v1/namespaces/default/configmaps"


def configmap(name: str, labels: dict[str, str] | None = None, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {"v": value},
    }


@pytest.fixture
async def http(kube: KubeEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=kube.url, timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(5):
        while len(events) < count:
            line = await response.content.readline()
            assert line, f"stream ended after {events}"
            events.append(json.loads(line))
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_a_watch_without_a_version_lists_current_objects_then_streams_changes(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    await kube.create(configmap("before"))
    async with http.get(CM_PATH, params={"watch": "true"}) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert summary(await read_events(response, 1)) == [("ADDED", "before")]
        await kube.create(configmap("after"))
        async with http.patch(
            f"{CM_PATH}/before",
            json={"data": {"v": "2"}},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as patched:
            assert patched.status == 200
        async with http.delete(f"{CM_PATH}/after") as deleted:
            assert deleted.status == 200
        events = await read_events(response, 3)
    assert summary(events) == [("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]
    assert events[1]["object"]["data"] == {"v": "2"}


async def test_a_watch_resumes_from_a_resource_version_without_losing_changes(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    first = await kube.create(configmap("first"))
    await kube.create(configmap("missed-1"))
    await kube.create(configmap("missed-2"))
    params = {"watch": "true", "resourceVersion": first["metadata"]["resourceVersion"]}
    async with http.get(CM_PATH, params=params) as response:
        events = await read_events(response, 2)
    assert summary(events) == [("ADDED", "missed-1"), ("ADDED", "missed-2")]


async def test_a_watch_from_a_compacted_resource_version_gets_410_gone(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    old = await kube.create(configmap("old"))
    await kube.create(configmap("newer"))
    kube.compact()
    params = {"watch": "true", "resourceVersion": old["metadata"]["resourceVersion"]}
    async with http.get(CM_PATH, params=params) as response:
        (event,) = await read_events(response, 1)
        assert await response.content.read() == b""  # the stream ends after the error
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_objects_entering_and_leaving_a_label_selector_are_added_and_deleted(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    await kube.create(configmap("cm", labels={"team": "a"}))
    async with http.get(CM_PATH, params={"watch": "true", "labelSelector": "team=b"}) as response:
        for team in ("b", "a"):
            async with http.patch(
                f"{CM_PATH}/cm",
                json={"metadata": {"labels": {"team": team}}},
                headers={"Content-Type": "application/merge-patch+json"},
            ) as patched:
                assert patched.status == 200
        assert summary(await read_events(response, 2)) == [("ADDED", "cm"), ("DELETED", "cm")]


async def test_a_watch_honours_timeout_seconds(kube: KubeEmulator, http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(CM_PATH, params={"watch": "true", "timeoutSeconds": "1"}) as response:
        assert await response.content.read() == b""
    assert 0.9 <= loop.time() - started < 5


async def test_initial_events_end_with_an_annotated_bookmark(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    await kube.create(configmap("one"))
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    async with http.get(CM_PATH, params=params) as response:
        added, bookmark = await read_events(response, 2)
    assert summary([added]) == [("ADDED", "one")]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_bookmarks_carry_the_current_resource_version() -> None:
    async with KubeEmulator(bookmark_interval=0.2) as kube, aiohttp.ClientSession(base_url=kube.url) as http:
        created = await kube.create(configmap("one"))
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": created["metadata"]["resourceVersion"],
        }
        async with http.get(CM_PATH, params=params) as response:
            (bookmark,) = await read_events(response, 1)
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_field_selected_watches_see_only_the_named_object(
    kube: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "true", "fieldSelector": "metadata.name=wanted"}
    async with http.get(CM_PATH, params=params) as response:
        await kube.create(configmap("other"))
        await kube.create(configmap("wanted"))
        assert summary(await read_events(response, 1)) == [("ADDED", "wanted")]
