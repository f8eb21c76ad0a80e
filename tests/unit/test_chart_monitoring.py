"""What the chart promises a platform team beyond installing the operator: the recommended labels with the
version on everything it creates, the ci value sets doing what their comments say, scraping (operator,
gateways and node agents, sidecars) and alerts whose every metric exists and whose every runbook is in
docs/operations.md."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from tests.support import chart_render as support
from tests.support import metrics_docs

ROOT = support.ROOT
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
APP_VERSION = support.chart().metadata["appVersion"]
ALL_MONITORING = {
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True, "alertLabels": {"team": "platform"}},
}


@functools.cache
def rendered(scenario: str) -> list[dict[str, Any]]:
    return support.render(support.CI_VALUES[scenario])


def header(scenario: str) -> str:
    """The comment at the top of a ci value file, as one line."""
    path = support.CHART / "ci" / f"{scenario}-values.yaml"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


# -- labels -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(support.CI_VALUES))
def test_every_object_carries_the_recommended_labels_with_the_version(scenario: str) -> None:
    for obj in rendered(scenario):
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/version") == APP_VERSION, (obj["kind"], obj["metadata"]["name"])
        assert labels.get("app.kubernetes.io/part-of") == "otlp-operator"
        assert labels.get("app.kubernetes.io/name") == "otlp-operator"
        expected_component = "crd" if obj["kind"] == "CustomResourceDefinition" else "operator"
        assert labels.get("app.kubernetes.io/component") == expected_component


def test_the_operator_pods_carry_the_version_outside_their_selector() -> None:
    deployment = support.one(rendered("default"), "Deployment")
    template = deployment["spec"]["template"]["metadata"]["labels"]
    assert template["app.kubernetes.io/version"] == APP_VERSION
    assert "app.kubernetes.io/version" not in deployment["spec"]["selector"]["matchLabels"]


# -- the ci value sets say what they install ----------------------------------------------------------------


def cluster_scoped(objects: list[dict[str, Any]]) -> set[str]:
    return {obj["kind"] for obj in objects if "namespace" not in obj["metadata"]}


def cluster_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for role in support.by_kind(objects, "ClusterRole") for rule in role["rules"]]


def test_default_installs_both_webhooks() -> None:
    assert "both webhooks" in header("default")
    kinds = {obj["kind"] for obj in rendered("default")}
    assert {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} <= kinds
    assert "--inject-sidecars" in support.operator_container(rendered("default"))["args"]


def test_one_namespace_without_injection_keeps_only_what_it_says_cluster_wide() -> None:
    said = header("single-namespace-no-injection")
    assert "cluster-wide only the CRD, the validating webhook configuration, and a ClusterRole" in said
    objects = rendered("single-namespace-no-injection")
    assert cluster_scoped(objects) == {
        "CustomResourceDefinition",
        "ValidatingWebhookConfiguration",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    (rule,) = cluster_rules(objects)
    assert (rule["resources"], rule["verbs"]) == (["validatingwebhookconfigurations"], ["get", "patch"])
    assert rule["resourceNames"] == [support.FULLNAME]


def test_two_namespaces_keep_a_small_cluster_role_for_namespaces_and_webhook_configurations() -> None:
    assert "a small ClusterRole remains" in header("single-namespace")
    objects = rendered("single-namespace")
    resources = {resource for rule in cluster_rules(objects) for resource in rule["resources"]}
    assert resources == {"namespaces", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"}
    assert {role["metadata"]["namespace"] for role in support.by_kind(objects, "Role")} >= {
        "team-a",
        "team-b",
    }
    assert "--verbose" in support.operator_container(objects)["args"]


def test_locked_down_keeps_one_of_two_replicas_up_and_has_no_webhooks() -> None:
    assert "keeping one of the two replicas up" in header("locked-down")
    objects = rendered("locked-down")
    assert support.one(objects, "Deployment")["spec"]["replicas"] == 2
    assert support.one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert not [o for o in objects if "Webhook" in o["kind"]]


def test_the_injection_webhook_is_on_where_the_comments_say_so() -> None:
    for scenario in ("cert-manager-issuer", "injection"):
        assert support.by_kind(rendered(scenario), "MutatingWebhookConfiguration"), scenario


# -- scraping -----------------------------------------------------------------------------------------------


def monitors(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in support.by_kind(objects, "ServiceMonitor")}


def test_the_operator_is_scraped_on_its_probe_port_through_a_metrics_service() -> None:
    objects = rendered("service-monitor")
    services = {s["metadata"]["name"]: s for s in support.by_kind(objects, "Service")}
    metrics = services[f"{support.FULLNAME}-metrics"]
    container = support.operator_container(objects)
    (health,) = [port for port in container["ports"] if port["name"] == "health"]
    (port,) = metrics["spec"]["ports"]
    assert (port["name"], port["targetPort"], port["port"]) == ("metrics", "health", health["containerPort"])
    pod_labels = support.one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert metrics["spec"]["selector"].items() <= pod_labels.items()
    operator = monitors(objects)[support.FULLNAME]
    assert operator["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    assert [(e["port"], e["path"]) for e in operator["spec"]["endpoints"]] == [("metrics", "/metrics")]
    assert f"{support.FULLNAME}-metrics" not in {
        s["metadata"]["name"] for s in support.by_kind(rendered("default"), "Service")
    }


def test_the_sidecars_are_scraped_on_their_agent_container_only() -> None:
    monitor = support.one(support.render({"podMonitor": {"enabled": True}}), "PodMonitor")
    assert monitor["spec"]["selector"] == {
        "matchExpressions": [{"key": "telemetry.otlp-operator.io/injected", "operator": "Exists"}]
    }
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "regex": "otlp-agent", "action": "keep"}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    scoped = support.render({"podMonitor": {"enabled": True}, "watchNamespaces": ["team-a"]})
    assert support.one(scoped, "PodMonitor")["spec"]["namespaceSelector"] == {"matchNames": ["team-a"]}
    assert not support.by_kind(rendered("default"), "PodMonitor")


# -- alerts -------------------------------------------------------------------------------------------------


def alerts(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rule = support.one(support.render(values), "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def metrics_in(expression: str) -> set[str]:
    """Metric names an expression selects: the names a `__name__` regex of the form prefix_(a|b)_suffix
    spells out, and every identifier left once label matchers, ranges, groupings and function or
    aggregation calls are taken out."""
    found: set[str] = set()
    for prefix, options, suffix in re.findall(r'__name__=~"([a-z_]+)_\(([a-z_|]+)\)_([a-z_]+)"', expression):
        found |= {f"{prefix}_{option}_{suffix}" for option in options.split("|")}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expression)
    bare = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare):
        if name not in {"and", "or", "unless", "bool", "offset"}:
            found.add(name)
    return found


def test_every_alert_has_a_runbook_section_and_is_in_the_docs_table() -> None:
    found = alerts(ALL_MONITORING)
    assert len(found) == 11
    headings = {heading.lower() for heading in re.findall(r"^#### (\S+)$", OPERATIONS, flags=re.MULTILINE)}
    for name, rule in found.items():
        url = rule["annotations"]["runbook_url"]
        assert (
            url
            == f"https://github.com/otlp-operator/otlp-operator/blob/main/docs/operations.md#{name.lower()}"
        )
        assert name.lower() in headings, f"no runbook section for {name}"
        assert f"| {name} |" in OPERATIONS, f"{name} is not in the alerts table"
        assert rule["labels"]["team"] == "platform"
        assert rule["labels"]["severity"] in ("info", "warning", "critical")


def test_every_metric_an_alert_reads_is_one_the_agent_or_the_operator_documents() -> None:
    documented = metrics_docs.agent_documented() | metrics_docs.operator_documented() | {"up"}
    for name, rule in alerts(ALL_MONITORING).items():
        used = {metrics_docs.family(metric) for metric in metrics_in(rule["expr"])}
        assert used, name
        assert used <= documented, f"{name} reads undocumented metrics: {sorted(used - documented)}"
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), name


def test_the_metric_check_above_sees_every_name_an_expression_reads() -> None:
    expression = (
        'sum by (a) (rate({__name__=~"otelcol_exporter_sent_(spans|log_records)_total"}[5m])) '
        'and on (pod) otlp_agent_build_info or otlp_operator_pipelines{x="y"} > 0'
    )
    assert metrics_in(expression) == {
        "otelcol_exporter_sent_spans_total",
        "otelcol_exporter_sent_log_records_total",
        "otlp_agent_build_info",
        "otlp_operator_pipelines",
    }


def test_agent_alerts_only_see_otlp_agents_and_the_queue_threshold_is_a_value() -> None:
    found = alerts({"prometheusRule": {"enabled": True, "queueFillRatio": 0.65}})
    for name, rule in found.items():
        if name.startswith("OTLPAgent"):
            assert rule["expr"].rstrip().endswith("and on (namespace, pod) otlp_agent_build_info"), name
    assert found["OTLPAgentQueueFilling"]["expr"].count("> 0.65") == 2
    assert "OTLPOperatorDown" not in found, "it reads the ServiceMonitor's job: only with serviceMonitor"
    assert not support.by_kind(rendered("default"), "PrometheusRule")
