"""CRD handling (discovery, schema validation, defaulting, pruning) and garbage collection in the emulator."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.kube_emulator import ApiError, KubeEmulator

WIDGETS = "/apis/emulator.test.io/v1/namespaces/default/widgets"


def widget(name: str, spec: dict[str, Any], owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {"apiVersion": "emulator.test.io/v1", "kind": "Widget", "metadata": meta, "spec": spec}


async def post(kube: KubeEmulator, path: str, body: Any, **params: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(base_url=kube.url) as http,
        http.post(path, json=body, params=params) as rsp,
    ):
        return rsp.status, await rsp.json()


async def test_creating_a_crd_makes_its_group_version_and_resource_discoverable(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession(base_url=kube.url) as http:
        async with http.get("/apis/emulator.test.io/v1") as missing:
            assert missing.status == 404
        await kube.create(widget_crd)
        async with http.get("/apis") as rsp:
            groups = {g["name"]: g for g in (await rsp.json())["groups"]}
        async with http.get("/apis/emulator.test.io/v1") as rsp:
            resources = {r["name"]: r for r in (await rsp.json())["resources"]}
    assert groups["emulator.test.io"]["preferredVersion"]["version"] == "v1"
    assert set(resources) == {"widgets", "widgets/status", "widgets/scale"}
    assert resources["widgets"]["kind"] == "Widget" and resources["widgets"]["shortNames"] == ["wd"]
    assert "watch" in resources["widgets"]["verbs"] and resources["widgets"]["namespaced"]
    crd = kube.get("customresourcedefinitions", "widgets.emulator.test.io")
    assert crd is not None
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"


async def test_schema_violations_are_422_invalid_with_every_field_path(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    bad = {"size": "big", "color": "pink", "name": "UPPER", "tags": ["a", "b", "c"], "limits": {"cpu": "x"}}
    status, body = await post(kube, WIDGETS, widget("bad", bad))
    assert (status, body["reason"]) == (422, "Invalid")
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert set(causes) == {"spec.size", "spec.color", "spec.name", "spec.tags", "spec.limits.cpu"}
    assert (
        causes["spec.size"] == 'Invalid value: "string": spec.size in body must be of type integer: "string"'
    )
    assert causes["spec.color"] == 'Unsupported value: "pink": supported values: "red", "green", "blue"'
    assert causes["spec.name"] == "Invalid value: \"UPPER\": spec.name in body should match '^[a-z]+$'"
    assert body["message"].startswith('Widget.emulator.test.io "bad" is invalid: [')


async def test_required_fields_and_bounds_are_enforced(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    status, body = await post(kube, WIDGETS, widget("missing", {"color": "red"}))
    assert status == 422
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]
    status, body = await post(kube, WIDGETS, widget("huge", {"size": 11}))
    assert status == 422
    assert "spec.size in body should be less than or equal to 10" in body["message"]


async def test_defaults_are_applied_and_unknown_fields_pruned(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    spec = {"size": 2, "port": "http", "unknown": True, "extra": {"free": {"form": 1}}}
    status, body = await post(kube, WIDGETS, widget("w", spec))
    assert status == 201
    assert body["spec"] == {
        "size": 2,
        "port": "http",
        "extra": {"free": {"form": 1}},
        "color": "red",
        "replicas": 1,
    }


async def test_strict_field_validation_rejects_unknown_fields(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    status, body = await post(kube, WIDGETS, widget("w", {"size": 2, "typo": 1}), fieldValidation="Strict")
    assert status == 400
    assert body["message"] == 'strict decoding error: unknown field "spec.typo"'


async def test_deleting_an_owner_deletes_its_dependents_in_the_background(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    owner = await kube.create(widget("owner", {"size": 1}))
    await kube.create(widget("child", {"size": 1}, owner=owner))
    grandchild_owner = kube.get("widgets", "child", "default")
    assert grandchild_owner is not None
    await kube.create(widget("grandchild", {"size": 1}, owner=grandchild_owner))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cfg",
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": "Widget",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    await kube.create(cm)
    async with aiohttp.ClientSession(base_url=kube.url) as http, http.delete(f"{WIDGETS}/owner") as rsp:
        assert rsp.status == 200
    await kube.wait_for(lambda: not kube.list("widgets") and kube.get("configmaps", "cfg", "default") is None)


async def test_orphan_propagation_keeps_dependents_without_the_owner_reference(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    owner = await kube.create(widget("owner", {"size": 1}))
    await kube.create(widget("child", {"size": 1}, owner=owner))
    async with (
        aiohttp.ClientSession(base_url=kube.url) as http,
        http.delete(f"{WIDGETS}/owner", json={"propagationPolicy": "Orphan"}) as rsp,
    ):
        assert rsp.status == 200
    child = kube.get("widgets", "child", "default")
    assert child is not None and "ownerReferences" not in child["metadata"]
    assert kube.get("widgets", "owner", "default") is None


async def test_foreground_deletion_keeps_the_owner_until_dependents_are_gone(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    owner = await kube.create(widget("owner", {"size": 1}))
    child = widget("child", {"size": 1}, owner=owner)
    child["metadata"]["finalizers"] = ["test.io/hold"]
    await kube.create(child)
    async with aiohttp.ClientSession(base_url=kube.url) as http:
        async with http.delete(f"{WIDGETS}/owner", params={"propagationPolicy": "Foreground"}) as rsp:
            assert (await rsp.json())["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert kube.get("widgets", "child", "default")["metadata"]["deletionTimestamp"]  # type: ignore[index]
        async with http.patch(
            f"{WIDGETS}/child",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as rsp:
            assert rsp.status == 200
    assert kube.list("widgets") == []


async def test_objects_whose_only_owner_is_missing_are_collected(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    ghost = {
        "apiVersion": "emulator.test.io/v1",
        "kind": "Widget",
        "metadata": {"name": "ghost", "uid": "no-such"},
    }
    await kube.create(widget("orphaned", {"size": 1}, owner=ghost))
    assert kube.get("widgets", "orphaned", "default") is None


async def test_deleting_a_namespace_deletes_its_content_then_itself(kube: KubeEmulator) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "doomed", "finalizers": ["test.io/hold"]},
    }
    await kube.create(held)
    await kube.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "doomed"}}
    )
    async with aiohttp.ClientSession(base_url=kube.url) as http:
        async with http.delete("/api/v1/namespaces/doomed") as rsp:
            assert (await rsp.json())["status"]["phase"] == "Terminating"
        with pytest.raises(ApiError) as caught:
            await kube.create(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": "doomed"}}
            )
        assert caught.value.code == 403
        assert kube.get("secrets", "s", "doomed") is None
        assert kube.get("namespaces", "doomed") is not None
        async with http.patch(
            "/api/v1/namespaces/doomed/configmaps/held",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as rsp:
            assert rsp.status == 200
    assert kube.get("namespaces", "doomed") is None


async def test_deleting_a_crd_deletes_its_resources_and_its_discovery(
    kube: KubeEmulator, widget_crd: dict[str, Any]
) -> None:
    await kube.create(widget_crd)
    await kube.create(widget("w", {"size": 1}))
    async with aiohttp.ClientSession(base_url=kube.url) as http:
        async with http.delete(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.emulator.test.io"
        ):
            pass
        async with http.get("/apis/emulator.test.io/v1") as rsp:
            assert rsp.status == 404
    assert kube.get("customresourcedefinitions", "widgets.emulator.test.io") is None
