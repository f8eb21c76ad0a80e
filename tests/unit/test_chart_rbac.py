"""Least privilege: the chart grants exactly the API calls the operator makes, derived from its code; and
the chart and the operator agree on the webhook paths and the command line.

The operator's own calls all go through `otlp_operator.reconcile.kube.Kube` (kinds in `kube.RESOURCES`);
kopf's calls
follow from the handlers registered by `handlers.build_registry`: it lists and watches every resource a
handler is registered for, patches its bookkeeping annotations on resources with change/timer handlers,
posts Events, and (cluster-wide) watches CRDs. Reconcile also lists the agent pods and (with
`agent.refreshPods`, the default) patches their config-hash annotation (`config_rollout`). Sidecar
injection adds informers (pipelines, namespaces) and the rollout calls of `kube.INJECTION_KINDS`;
namespaces are cluster-scoped, so they are granted by a ClusterRole even when the operator watches only
some namespaces. kopf peering between the replicas adds
list/watch of the peering objects and a patch of this release's one (by name). The operator's own webhook
certificate (`kube.TLS_KINDS`) adds get/update of its one Secret and get/patch of the release's two webhook
configurations, each limited by resourceNames. The e2e install test checks the calls actually recorded
against the same rules, names included.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from otlp_agent.api import spec
from otlp_operator.edge import handlers, pipeline_webhook, settings
from otlp_operator.reconcile import kube

from tests.support import chart_render as support

Call = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

# What each Kube method is on the wire, and the kinds it is used for (kube.py's table).
CHILD_VERBS = ("get", "list", "create", "patch", "delete")
PIPELINE_CALLS = {(spec.API_GROUP, spec.PLURAL, "get"), (spec.API_GROUP, f"{spec.PLURAL}/status", "patch")}
# Sidecar injection (kube.INJECTION_KINDS): list pods of a pipeline (its workloads are child kinds).
INJECTION_VERBS = {"Pod": ("list",)}
# config_rollout: which agents run which config, and the annotation that refreshes their file.
AGENT_POD_CALLS = {("", "pods", "list"), ("", "pods", "patch")}
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")}
NAMESPACES = kube.Resource("", "v1", "namespaces")  # cluster-scoped: never in a namespaced Role
# kopf peering (settings.Peering): the peering objects are watched, this release's one patched (by name).
CLUSTER_PEERING = {("kopf.dev", "clusterkopfpeerings", v) for v in ("list", "watch", "patch")}
NAMESPACED_PEERING = {("kopf.dev", "kopfpeerings", v) for v in ("list", "watch", "patch")}
# The operator's own certificate (webhook_tls): only by name.
TLS_VERBS = {"Secret": ("get", "update"), "ValidatingWebhookConfiguration": ("get", "patch")}
TLS_VERBS["MutatingWebhookConfiguration"] = ("get", "patch")
BY_NAME_ONLY = {"secrets", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"}
BY_NAME_ONLY |= {"clusterkopfpeerings", "kopfpeerings"}


def registry(injection: bool = True) -> Any:
    webhook = settings.Webhook(port=9443, certfile="tls.crt", keyfile="tls.key")
    config = settings.OperatorConfig(agent_image="x", webhook=webhook, injection=injection)
    return handlers.build_registry(config)


def kopf_calls(injection: bool) -> set[Call]:
    """The calls kopf makes for the registered handlers: list+watch what it watches or indexes, patch its
    bookkeeping on what has change or timer handlers, and post Events."""
    reg = registry(injection)
    calls: set[Call] = {("", "events", "create")}
    changing = [*reg._changing.get_all_handlers(), *reg._spawning.get_all_handlers()]
    watched = [*reg._watching.get_all_handlers(), *reg._indexing.get_all_handlers(), *changing]
    for handler in watched:
        resource = _resource_of(handler.selector)
        calls |= {(resource.group, resource.plural, "list"), (resource.group, resource.plural, "watch")}
    for handler in changing:
        resource = _resource_of(handler.selector)
        calls.add((resource.group, resource.plural, "patch"))
    return calls


def _resource_of(selector: Any) -> kube.Resource:
    known = [*kube.RESOURCES.values(), NAMESPACES]
    matches = [r for r in known if selector.check(_as_kopf_resource(r))]
    assert len(matches) == 1, f"handler selector {selector} matches {matches}"
    return matches[0]


def _as_kopf_resource(resource: kube.Resource) -> Any:
    import kopf._cogs.structs.references as references

    return references.Resource(group=resource.group, version=resource.version, plural=resource.plural)


def operator_calls(injection: bool = True) -> set[Call]:
    calls = PIPELINE_CALLS | AGENT_POD_CALLS
    for kind in kube.CHILD_KINDS:
        resource = kube.RESOURCES[kind]
        calls |= {(resource.group, resource.plural, verb) for verb in CHILD_VERBS}
    if injection:
        for kind in kube.INJECTION_KINDS:
            resource = kube.RESOURCES[kind]
            calls |= {(resource.group, resource.plural, verb) for verb in INJECTION_VERBS[kind]}
        # The pod webhook's informers (injection_handlers): list and watch pipelines and namespaces.
        for kind in (kube.PIPELINE, "Namespace"):
            resource = kube.RESOURCES[kind]
            calls |= {(resource.group, resource.plural, verb) for verb in ("list", "watch")}
    return calls | kopf_calls(injection)


def tls_calls(injection: bool = True) -> set[Call]:
    kinds = [k for k in kube.TLS_KINDS if injection or k != "MutatingWebhookConfiguration"]
    return {(kube.RESOURCES[k].group, kube.RESOURCES[k].plural, verb) for k in kinds for verb in TLS_VERBS[k]}


def cluster_scoped(calls: set[Call]) -> set[Call]:
    return {call for call in calls if call[:2] == (NAMESPACES.group, NAMESPACES.plural)}


def webhook_configurations(calls: set[Call]) -> set[Call]:
    return {call for call in calls if call[1].endswith("webhookconfigurations")}


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


def tls_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [r for r in support.by_kind(objects, "Role") if r["metadata"]["name"].endswith("-webhook-tls")]
    return found


def watched_roles(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    roles = support.by_kind(objects, "Role")
    return {
        r["metadata"]["namespace"]: r for r in roles if not r["metadata"]["name"].endswith("-webhook-tls")
    }


def test_the_cluster_role_grants_exactly_the_calls_the_operator_makes() -> None:
    objects = rendered("default")
    cluster_role = support.one(objects, "ClusterRole")
    tls = tls_calls()
    cluster_tls = webhook_configurations(tls)
    assert granted(cluster_role["rules"]) == operator_calls() | CRDS | CLUSTER_PEERING | cluster_tls
    assert granted(tls_role(objects)["rules"]) == tls - cluster_tls


@pytest.mark.parametrize("namespace", ["team-a", "team-b"])
def test_each_namespaced_role_grants_exactly_the_namespaced_calls(namespace: str) -> None:
    objects = rendered("single-namespace")
    calls = operator_calls()
    assert (
        granted(watched_roles(objects)[namespace]["rules"])
        == calls - cluster_scoped(calls) | NAMESPACED_PEERING
    )
    cluster_tls = webhook_configurations(tls_calls())
    assert granted(support.one(objects, "ClusterRole")["rules"]) == cluster_scoped(calls) | cluster_tls


def test_without_injection_the_role_grants_exactly_the_reconcile_calls() -> None:
    objects = rendered("single-namespace-no-injection")
    (role,) = watched_roles(objects).values()
    calls = operator_calls(injection=False)
    assert cluster_scoped(calls) == set()
    assert granted(role["rules"]) == calls | NAMESPACED_PEERING
    cluster_tls = webhook_configurations(tls_calls(injection=False))
    assert granted(support.one(objects, "ClusterRole")["rules"]) == cluster_tls


def test_without_pod_refresh_the_operator_may_not_patch_pods_and_is_told_so() -> None:
    objects = support.render({**support.CI_VALUES["default"], "agent": {"refreshPods": False}})
    pods = {call for call in granted(support.one(objects, "ClusterRole")["rules"]) if call[1] == "pods"}
    assert pods == {("", "pods", "list")}
    (deployment,) = support.by_kind(objects, "Deployment")
    assert "--no-pod-refresh" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("scenario", sorted(support.CI_VALUES))
def test_secrets_webhook_configurations_and_peering_objects_are_reached_only_by_name(scenario: str) -> None:
    objects = rendered(scenario)
    for role in [*support.by_kind(objects, "ClusterRole"), *support.by_kind(objects, "Role")]:
        for rule in role["rules"]:
            limited = set(rule["resources"]) & BY_NAME_ONLY
            if limited and not {"list", "watch"} & set(rule["verbs"]):  # list/watch cannot be limited by name
                assert rule["resourceNames"] == [
                    f"{support.FULLNAME}-webhook-tls" if "secrets" in limited else support.FULLNAME
                ], rule
            elif limited:
                assert limited <= {"clusterkopfpeerings", "kopfpeerings"}, rule


def test_with_a_mounted_certificate_the_operator_reads_secrets_never() -> None:
    for scenario in ("cert-manager", "existing-secret"):
        for role in [
            *support.by_kind(rendered(scenario), "ClusterRole"),
            *support.by_kind(rendered(scenario), "Role"),
        ]:
            assert not [call for call in granted(role["rules"]) if call[1] == "secrets"], scenario


def test_the_derivation_notices_a_new_child_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proves the comparison above follows the operator's code: a kind added to kube.RESOURCES changes it.
    extra = {**kube.RESOURCES, "CronJob": kube.Resource("batch", "v1", "cronjobs")}
    monkeypatch.setattr(kube, "RESOURCES", extra)
    monkeypatch.setattr(kube, "CHILD_KINDS", (*kube.CHILD_KINDS, "CronJob"))
    cluster_role = support.one(rendered("default"), "ClusterRole")
    assert ("batch", "cronjobs", "create") in operator_calls() - granted(cluster_role["rules"])


def test_the_validating_webhook_path_is_the_handler_kopf_serves() -> None:
    ids = {handler.id: handler.reason.value for handler in registry()._webhooks.get_all_handlers()}
    assert ids.get(pipeline_webhook.WEBHOOK_ID) == "validating"
    hook = support.validating_webhook(rendered("default"))
    assert hook["clientConfig"]["service"]["path"] == f"/{pipeline_webhook.WEBHOOK_ID}"


def test_the_injection_webhook_path_is_the_handler_kopf_serves() -> None:
    mutating = [h.id for h in registry()._webhooks.get_all_handlers() if h.reason.value == "mutating"]
    hook = support.one(rendered("default"), "MutatingWebhookConfiguration")["webhooks"][0]
    assert [hook["clientConfig"]["service"]["path"]] == [f"/{handler_id}" for handler_id in mutating]


@pytest.mark.parametrize("scenario", sorted(support.CI_VALUES))
def test_the_operator_accepts_the_charts_command_line(scenario: str) -> None:
    from otlp_operator.edge import cli

    objects = rendered(scenario)
    container = support.operator_container(objects)
    args = cli.build_parser().parse_args(container["args"])
    watched = support.CI_VALUES[scenario].get("watchNamespaces") or []
    assert (args.namespace or []) == watched and args.all_namespaces == (not watched)
    webhook_enabled = (support.CI_VALUES[scenario].get("webhook") or {}).get("enabled", True)
    assert (args.webhook_port is not None) == webhook_enabled
    injection = support.by_kind(objects, "MutatingWebhookConfiguration") != []
    assert args.inject_sidecars == injection
    if webhook_enabled:
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "webhook")
        assert args.webhook_port == port and args.webhook_cert and args.webhook_key
        assert args.webhook_managed is None, "the chart owns the webhook configurations"
