"""Least privilege: the chart grants exactly the API calls the operator makes, derived from its code; and
the chart and the operator agree on the webhook paths and the command line.

The operator's own calls all go through `otlp_operator.kube.Kube` (kinds in `kube.RESOURCES`); kopf's calls
follow from the handlers registered by `handlers.build_registry`: it lists and watches every resource a
handler is registered for, patches its bookkeeping annotations on resources with change/timer handlers,
posts Events, and (cluster-wide) watches CRDs. The e2e install test checks the calls actually recorded
against the same rules.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from otlp_agent import spec
from otlp_operator import handlers, kube, settings, webhooks

from tests.unit import test_chart_support as support

Call = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

# What each Kube method is on the wire, and the kinds it is used for (kube.py's table).
CHILD_VERBS = ("get", "list", "create", "patch", "delete")
PIPELINE_CALLS = {(spec.API_GROUP, spec.PLURAL, "get"), (spec.API_GROUP, f"{spec.PLURAL}/status", "patch")}
CLUSTER_ONLY = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")}


def registry() -> Any:
    config = settings.OperatorConfig(agent_image="x", webhook=settings.Webhook(port=9443))
    return handlers.build_registry(config)


def kopf_calls() -> set[Call]:
    """The calls kopf makes for the registered handlers."""
    reg = registry()
    calls: set[Call] = {("", "events", "create")}
    watched = [*reg._watching.get_all_handlers(), *reg._changing.get_all_handlers()]
    watched += reg._spawning.get_all_handlers()
    changing = [*reg._changing.get_all_handlers(), *reg._spawning.get_all_handlers()]
    for handler in watched:
        resource = _resource_of(handler.selector)
        calls |= {(resource.group, resource.plural, "list"), (resource.group, resource.plural, "watch")}
    for handler in changing:
        resource = _resource_of(handler.selector)
        calls.add((resource.group, resource.plural, "patch"))
    return calls


def _resource_of(selector: Any) -> kube.Resource:
    matches = [r for r in kube.RESOURCES.values() if selector.check(_as_kopf_resource(r))]
    assert len(matches) == 1, f"handler selector {selector} matches {matches}"
    return matches[0]


def _as_kopf_resource(resource: kube.Resource) -> Any:
    import kopf._cogs.structs.references as references

    return references.Resource(group=resource.group, version=resource.version, plural=resource.plural)


def operator_calls() -> set[Call]:
    calls = set(PIPELINE_CALLS)
    for kind in kube.CHILD_KINDS:
        resource = kube.RESOURCES[kind]
        calls |= {(resource.group, resource.plural, verb) for verb in CHILD_VERBS}
    return calls | kopf_calls()


def granted(rules: list[dict[str, Any]]) -> set[Call]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@functools.cache
def rendered(scenario: str) -> list[dict[str, Any]]:
    return support.render(support.CI_VALUES[scenario])


def test_no_rule_uses_wildcards_or_resource_less_verbs() -> None:
    for obj in [
        *support.by_kind(rendered("default"), "ClusterRole"),
        *support.by_kind(rendered("single-namespace"), "Role"),
    ]:
        for rule in obj["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
            assert rule["resources"] and "nonResourceURLs" not in rule


def test_the_cluster_role_grants_exactly_the_calls_the_operator_makes() -> None:
    cluster_role = support.one(rendered("default"), "ClusterRole")
    assert granted(cluster_role["rules"]) == operator_calls() | CLUSTER_ONLY


@pytest.mark.parametrize("namespace", ["team-a", "team-b"])
def test_each_namespaced_role_grants_exactly_the_namespaced_calls(namespace: str) -> None:
    roles = {
        role["metadata"]["namespace"]: role for role in support.by_kind(rendered("single-namespace"), "Role")
    }
    assert granted(roles[namespace]["rules"]) == operator_calls()


def test_the_operator_reads_secrets_never() -> None:
    # The webhook certificate is a mounted volume: the operator needs no API access to any Secret.
    assert not [call for call in operator_calls() if call[1] == "secrets"]
    assert not [
        call
        for call in granted(support.one(rendered("default"), "ClusterRole")["rules"])
        if call[1] == "secrets"
    ]


def test_the_derivation_notices_a_new_child_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proves the comparison above follows the operator's code: a kind added to kube.RESOURCES changes it.
    extra = {**kube.RESOURCES, "StatefulSet": kube.Resource("apps", "v1", "statefulsets")}
    monkeypatch.setattr(kube, "RESOURCES", extra)
    monkeypatch.setattr(kube, "CHILD_KINDS", (*kube.CHILD_KINDS, "StatefulSet"))
    cluster_role = support.one(rendered("default"), "ClusterRole")
    assert ("apps", "statefulsets", "create") in operator_calls() - granted(cluster_role["rules"])


def test_the_validating_webhook_path_is_the_handler_kopf_serves() -> None:
    ids = {handler.id: handler.reason.value for handler in registry()._webhooks.get_all_handlers()}
    assert ids.get(webhooks.WEBHOOK_ID) == "validating"
    (hook,) = support.webhooks(rendered("default"))
    assert hook["clientConfig"]["service"]["path"] == f"/{webhooks.WEBHOOK_ID}"


def test_the_injection_webhook_stays_off_until_the_operator_serves_it() -> None:
    mutating = [h.id for h in registry()._webhooks.get_all_handlers() if h.reason.value == "mutating"]
    defaults = support.chart().values["webhook"]["mutating"]
    if not mutating:
        assert defaults["enabled"] is False
    else:  # once the handler lands, the chart's path must be the handler's
        hook = support.one(rendered("injection"), "MutatingWebhookConfiguration")["webhooks"][0]
        assert [hook["clientConfig"]["service"]["path"]] == [f"/{handler_id}" for handler_id in mutating]


@pytest.mark.parametrize("scenario", sorted(support.CI_VALUES))
def test_the_operator_accepts_the_charts_command_line(scenario: str) -> None:
    from otlp_operator import cli

    objects = rendered(scenario)
    container = support.operator_container(objects)
    args = cli.build_parser().parse_args(container["args"])
    watched = support.CI_VALUES[scenario].get("watchNamespaces") or []
    assert (args.namespace or []) == watched and args.all_namespaces == (not watched)
    webhook_enabled = (support.CI_VALUES[scenario].get("webhook") or {}).get("enabled", True)
    assert (args.webhook_port is not None) == webhook_enabled
    if webhook_enabled:
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "webhook")
        assert args.webhook_port == port and args.webhook_cert and args.webhook_key
        assert args.webhook_managed is None, "the chart owns the webhook configurations"
