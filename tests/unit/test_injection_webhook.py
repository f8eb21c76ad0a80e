"""The webhook's edge: it admits every pod whatever fails inside, and reads the cluster version."""

from __future__ import annotations

from typing import Any

import kopf
from otlp_operator.edge import injection_handlers, settings

from tests.support.injection_inputs import bare_pod, target


class Broken:
    """An index whose every lookup fails, as a bug of ours would."""

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("boom")


def webhook(state_holder: list[injection_handlers.State]) -> Any:
    config = settings.OperatorConfig(agent_image="img", webhook=settings.Webhook(port=9443), injection=True)
    registry = kopf.OperatorRegistry()
    state_holder.append(injection_handlers.register(registry, config))
    (handler,) = registry._webhooks.get_all_handlers()
    assert handler.id == "inject" and handler.ignore_failures and handler.operations == ["CREATE"]
    return handler.fn


async def test_a_failure_inside_the_webhook_admits_the_pod_unchanged() -> None:
    fn = webhook([])
    pod = bare_pod()
    pod["metadata"]["annotations"] = {"telemetry.otlp-operator.io/inject": "agent"}
    patch = kopf.Patch()
    kwargs = {"injection_pipelines": Broken(), "injection_namespaces": Broken()}
    await fn(body=kopf.Body(pod), patch=patch, warnings=[], dryrun=False, **kwargs)
    assert not patch


async def test_an_admitted_pod_is_replaced_by_the_injected_one_through_the_patch() -> None:
    holder: list[injection_handlers.State] = []
    fn = webhook(holder)
    holder[0].version = (1, 30)
    pod = bare_pod()
    pod["metadata"]["annotations"] = {"telemetry.otlp-operator.io/inject": "agent"}
    patch = kopf.Patch(body=kopf.Body(pod))
    indexes = {"injection_pipelines": {"shop": [target("agent")]}, "injection_namespaces": {}}
    warnings: list[str] = []
    await fn(body=kopf.Body(pod), patch=patch, warnings=warnings, dryrun=True, **indexes)
    paths = {op["path"] for op in patch.as_json_patch()}
    assert "/spec/initContainers" in paths and warnings == []


async def test_a_pod_asking_for_an_unknown_pipeline_gets_an_admission_warning_and_no_patch() -> None:
    fn = webhook([])
    pod = bare_pod()
    pod["metadata"]["annotations"] = {"telemetry.otlp-operator.io/inject": "missing"}
    patch, warnings = kopf.Patch(), []  # type: ignore[var-annotated]
    indexes = {"injection_pipelines": {}, "injection_namespaces": {}}
    await fn(body=kopf.Body(pod), patch=patch, warnings=warnings, dryrun=True, **indexes)
    assert not patch
    assert warnings == ["no OTLP agent injected (UnknownPipeline): pipeline shop/missing does not exist"]


def test_the_server_version_is_read_with_provider_suffixes() -> None:
    assert injection_handlers.parse_version({"major": "1", "minor": "29+"}) == (1, 29)
    assert injection_handlers.parse_version({"major": "1", "minor": "28"}) == (1, 28)
    assert injection_handlers.parse_version({}) == injection_handlers.UNKNOWN_VERSION
