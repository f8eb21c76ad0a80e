"""Writing a sidecar pipeline's config copies: created when missing, patched only when they differ, a
namespace that refuses skipped (the others written), a transient error raised for the reconcile's retry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from otlp_operator.injection import configcopy, markers
from otlp_operator.manifests import configmap
from otlp_operator.reconcile import config_copies, kube

from tests.support.injection_inputs import EXPORTER, IMAGE, pipeline

SHARED_INJECTION = {"allowed": {"namespaces": ["a", "b", "c"]}}
SHARED = pipeline("shared", "observability", injection=SHARED_INJECTION)


class Namespaces:
    """ConfigMaps by (namespace, name), like an API server; `refuse` answers a namespace with that error."""

    def __init__(self, refuse: dict[str, kube.ApiError] | None = None) -> None:
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.refuse = refuse or {}
        self.writes: list[tuple[str, str]] = []

    def _check(self, namespace: str) -> None:
        if namespace in self.refuse:
            raise self.refuse[namespace]

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.stored.get((namespace, name)))

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self._check(meta["namespace"])
        self.writes.append(("create", meta["namespace"]))
        self.stored[(meta["namespace"], meta["name"])] = copy.deepcopy(obj)
        return obj

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check(namespace)
        self.writes.append(("patch", namespace))
        live = self.stored[(namespace, name)]
        live["data"].update(patch["data"])
        for field in ("labels", "annotations"):
            live["metadata"].setdefault(field, {}).update(patch["metadata"][field])
        return live


async def write(client: Namespaces, pipeline_: Any = SHARED) -> config_copies.Written:
    return await config_copies.write(client, configcopy.build(pipeline_, IMAGE))  # type: ignore[arg-type]


async def test_missing_copies_are_created_and_unchanged_ones_are_left_alone() -> None:
    client = Namespaces()
    first = await write(client)
    assert client.writes == [("create", "a"), ("create", "b"), ("create", "c")] and len(first.changes) == 3
    again = await write(client)
    assert (again.changes, client.writes[3:]) == ([], [])


async def test_a_changed_config_rewrites_every_copy() -> None:
    client = Namespaces()
    await write(client)
    moved = {**EXPORTER, "endpoint": "elsewhere.observability.svc:4317"}  # a config-only change
    edited = pipeline("shared", "observability", injection=SHARED_INJECTION, exporters=[moved])
    found = await write(client, edited)
    assert client.writes[3:] == [("patch", "a"), ("patch", "b"), ("patch", "c")] and len(found.changes) == 3
    (data,) = {str(c["data"]) for c in client.stored.values()}
    assert "elsewhere.observability.svc:4317" in data


async def test_a_namespace_that_refuses_is_skipped_and_the_others_are_written() -> None:
    client = Namespaces(refuse={"b": kube.ApiError(404, "NotFound", 'namespaces "b" not found')})
    found = await write(client)
    assert client.writes == [("create", "a"), ("create", "c")]
    assert list(found.failed) == ["b"] and "not found" in found.failed["b"]


async def test_a_transient_error_is_raised_for_the_reconcile_to_retry() -> None:
    client = Namespaces(refuse={"a": kube.ApiError(503, "ServiceUnavailable", "try again")})
    with pytest.raises(kube.ApiError):
        await write(client)


# Two teams name their sidecar pipelines alike: "app" in "shop", and "app" in "team", which also serves pods
# of "shop". Their configs differ (each team's own backend).
SHOP_APP = pipeline("app", "shop", exporters=[{**EXPORTER, "endpoint": "shop-backend.shop.svc:4317"}])
TEAM_APP = pipeline(
    "app", "team", exporters=[{**EXPORTER, "endpoint": "team-backend.team.svc:4317"}],
    injection={"allowed": {"namespaces": ["shop"]}},
)  # fmt: skip


async def test_a_same_named_pipeline_of_another_namespace_never_writes_over_a_teams_own_config() -> None:
    client = Namespaces()
    own = configmap.build(SHOP_APP, IMAGE)
    client.stored[("shop", own["metadata"]["name"])] = copy.deepcopy(own)
    found = await write(client, TEAM_APP)
    (made,) = configcopy.build(TEAM_APP, IMAGE)
    assert made["metadata"]["name"] != own["metadata"]["name"]  # the namespace is in the name's hash
    assert client.stored[("shop", own["metadata"]["name"])] == own  # shop's sidecars keep shop's config
    assert "team-backend" in str(client.stored[("shop", made["metadata"]["name"])]["data"])
    assert found.failed == {} and client.writes == [("create", "shop")]


async def test_two_same_named_pipelines_copying_into_one_namespace_each_keep_their_own_copy() -> None:
    client = Namespaces()
    other = pipeline(
        "app", "elsewhere", exporters=[{**EXPORTER, "endpoint": "other-backend.elsewhere.svc:4317"}],
        injection={"allowed": {"namespaces": ["shop"]}},
    )  # fmt: skip
    for _ in range(2):  # reconciles alternate: neither rewrites the other's copy
        await write(client, TEAM_APP)
        await write(client, other)
    assert client.writes == [("create", "shop"), ("create", "shop")]
    data = {name: str(obj["data"]) for (_, name), obj in client.stored.items()}
    assert sorted("team-backend" in d for d in data.values()) == [False, True]
    labels = [obj["metadata"]["labels"] for obj in client.stored.values()]
    selected = {(found[configcopy.COPY_LABEL], found[configcopy.COPY_NAMESPACE_LABEL]) for found in labels}
    assert selected == {("app", "team"), ("app", "elsewhere")}  # the documented clean-up tells them apart


async def test_a_name_held_by_anything_but_this_pipelines_copy_is_left_as_it_is() -> None:
    # Whatever made the names meet (a copy by an operator that did not hash the namespace in, a ConfigMap
    # someone wrote by hand), the copy does not overwrite it: the namespace is reported, the others written.
    team = pipeline(
        "app", "team", exporters=[{**EXPORTER, "endpoint": "team-backend.team.svc:4317"}],
        injection={"allowed": {"namespaces": ["shop", "web"]}},
    )  # fmt: skip
    name = configcopy.build(team, IMAGE)[0]["metadata"]["name"]
    for holder in ({}, {markers.PIPELINE_ANNOTATION: "elsewhere/app"}):
        client = Namespaces()
        where = {"name": name, "namespace": "shop", "annotations": holder}
        squatter = {"metadata": where, "data": {"pipeline.yaml": "theirs"}}
        client.stored[("shop", name)] = copy.deepcopy(squatter)
        found = await write(client, team)
        assert client.stored[("shop", name)] == squatter and client.writes == [("create", "web")]
        assert list(found.failed) == ["shop"] and "is not a copy of pipeline team/app" in found.failed["shop"]
        assert ("elsewhere/app" in found.failed["shop"]) == bool(holder)
