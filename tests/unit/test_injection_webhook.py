"""The webhook's edge: it admits every pod whatever fails inside, answers from the caches in kopf's memo,
forgets a namespace's opt-in the moment its annotation goes, and reads the cluster version."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import kopf
from otlp_operator.edge import injection_handlers, injection_state, settings
from otlp_operator.injection import catalog

from tests.support.injection_inputs import bare_pod, target
from tests.support.injection_objects import INJECT


class Broken(catalog.Catalog):
    """A catalog whose every lookup fails, as a bug of ours would."""

    def pipelines(self, namespace: str) -> list[Any]:
        raise RuntimeError("boom")


def webhook() -> Any:
    config = settings.OperatorConfig(agent_image="img", webhook=settings.Webhook(port=0), injection=True)
    registry = kopf.OperatorRegistry()
    injection_handlers.register(registry, config)
    (handler,) = registry._webhooks.get_all_handlers()
    assert handler.id == "inject" and handler.ignore_failures and handler.operations == ["CREATE"]
    return handler.fn


def memo_with(found: catalog.Catalog, version: tuple[int, int] = (1, 30)) -> kopf.Memo:
    """A memo as the startup handler leaves it, with caches that have listed once."""
    config = settings.OperatorConfig(agent_image="img", injection=True)
    synced = asyncio.Event()
    synced.set()
    state = injection_state.Injection(config, client=None, version=version, catalog=found)  # type: ignore[arg-type]
    state.informers.append(types.SimpleNamespace(synced=synced))  # type: ignore[arg-type]
    return kopf.Memo({injection_state.MEMO_KEY: state})


def with_pipeline(name: str) -> catalog.Catalog:
    found = catalog.Catalog()
    found._pipelines = {"shop": {name: target(name)}}
    return found


def asking(inject: str | None) -> dict[str, Any]:
    pod = bare_pod()
    if inject is not None:
        pod["metadata"]["annotations"] = {INJECT: inject}
    return pod


async def test_a_failure_inside_the_webhook_admits_the_pod_unchanged() -> None:
    patch = kopf.Patch()
    await webhook()(
        body=kopf.Body(asking("agent")), patch=patch, warnings=[], dryrun=False, memo=memo_with(Broken())
    )
    assert not patch


async def test_an_admitted_pod_is_replaced_by_the_injected_one_through_the_patch() -> None:
    pod = asking("agent")
    patch = kopf.Patch(body=kopf.Body(pod))
    warnings: list[str] = []
    await webhook()(
        body=kopf.Body(pod),
        patch=patch,
        warnings=warnings,
        dryrun=True,
        memo=memo_with(with_pipeline("agent")),
    )
    paths = {op["path"] for op in patch.as_json_patch()}
    assert "/spec/initContainers" in paths and warnings == []


async def test_a_pod_asking_for_an_unknown_pipeline_gets_an_admission_warning_and_no_patch() -> None:
    patch, warnings = kopf.Patch(), []  # type: ignore[var-annotated]
    await webhook()(
        body=kopf.Body(asking("missing")),
        patch=patch,
        warnings=warnings,
        dryrun=True,
        memo=memo_with(catalog.Catalog()),
    )
    assert not patch
    assert warnings == ["no OTLP agent injected (UnknownPipeline): pipeline shop/missing does not exist"]


async def test_caches_that_never_listed_admit_unchanged_with_a_warning() -> None:
    memo = memo_with(with_pipeline("agent"))
    memo[injection_state.MEMO_KEY].informers[0].synced.clear()
    patch, warnings = kopf.Patch(), []  # type: ignore[var-annotated]
    await webhook()(body=kopf.Body(asking("agent")), patch=patch, warnings=warnings, dryrun=True, memo=memo)
    assert not patch and warnings == [
        "no OTLP agent injected (NotReady): the operator's caches are not filled yet"
    ]
    assert injection_state.waiting_for(memo) == "the pod webhook's caches of pipelines and namespaces"


async def test_removing_a_namespaces_opt_in_stops_injection_at_once() -> None:
    found = with_pipeline("agent")
    namespace = {"metadata": {"name": "shop", "annotations": {INJECT: "agent"}}}
    found.replace_namespaces([namespace])
    memo = memo_with(found)
    patch = kopf.Patch(body=kopf.Body(asking(None)))
    await webhook()(body=kopf.Body(asking(None)), patch=patch, warnings=[], dryrun=True, memo=memo)
    assert patch, "the namespace asks for the pipeline"
    found.apply_namespace("MODIFIED", {"metadata": {"name": "shop", "annotations": {}}})  # annotate inject-
    patch = kopf.Patch(body=kopf.Body(asking(None)))
    await webhook()(body=kopf.Body(asking(None)), patch=patch, warnings=[], dryrun=True, memo=memo)
    assert not patch


def test_the_server_version_is_read_with_provider_suffixes() -> None:
    assert injection_handlers.parse_version({"major": "1", "minor": "29+"}) == (1, 29)
    assert injection_handlers.parse_version({"major": "1", "minor": "28"}) == (1, 28)
    assert injection_handlers.parse_version({}) == injection_state.UNKNOWN_VERSION
