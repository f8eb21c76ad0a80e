"""Validation of `routes` and `processors.k8sAttributes`: accepted when sound, and every routing mistake
reported at once, each at its field path."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules
from otlp_agent.api.problems import SpecError

EXPORTERS = [
    {"name": "team-a", "debug": {}},
    {"name": "traces-only", "debug": {}, "signals": ["traces"]},
    {"name": "shared", "debug": {}},
]


def problems(routes: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec({"exporters": EXPORTERS, "routes": routes})
    return {p.path: p.message for p in caught.value.problems}


def test_sound_routes_and_enrichment_are_accepted() -> None:
    parsed = rules.validate_spec(
        {
            "exporters": EXPORTERS,
            "processors": {"k8sAttributes": {"clusterName": "prod-eu"}},
            "routes": {
                "rules": [
                    {
                        "name": "a",
                        "match": [
                            {"attribute": "k8s.namespace.name", "in": ["team-a", "team-a2"]},
                            {"attribute": "service.name", "regex": "checkout-.*"},
                            {"attribute": "debug", "exists": False},
                        ],
                        "exporters": ["team-a"],
                    },
                    {"name": "t", "signals": ["traces"], "exporters": ["traces-only", "shared"]},
                ],
                "default": ["shared", "traces-only"],
            },
        }
    )
    assert parsed.routes is not None and [rule.name for rule in parsed.routes.rules] == ["a", "t"]
    assert parsed.processors.k8s_attributes is not None
    assert parsed.processors.k8s_attributes.cluster_name == "prod-eu"


def test_an_empty_k8s_attributes_is_accepted() -> None:
    parsed = rules.validate_spec({"exporters": EXPORTERS, "processors": {"k8sAttributes": {}}})
    assert parsed.processors.k8s_attributes is not None


def test_every_routing_mistake_is_reported_in_one_pass_at_its_path() -> None:
    found = problems(
        {
            "rules": [
                {
                    "name": "a",
                    "match": [
                        {"attribute": "x", "equals": "1", "regex": "1"},
                        {"attribute": "y"},
                        {"attribute": "z", "regex": "(unclosed"},
                        {"attribute": "w", "in": []},
                    ],
                    "exporters": ["team-a", "nobody"],
                },
                {"name": "a", "signals": ["logs", "traces"], "exporters": ["traces-only"]},
            ],
            "default": ["shared", "ghost"],
        }
    )
    assert found == {
        "spec.routes.rules[0].match[0]": "set exactly one of equals, in, regex, exists",
        "spec.routes.rules[0].match[1]": "set exactly one of equals, in, regex, exists",
        "spec.routes.rules[0].match[2].regex": found["spec.routes.rules[0].match[2].regex"],
        "spec.routes.rules[0].match[3].in": "list at least one value (an empty list never matches)",
        "spec.routes.rules[0].exporters[1]": "no exporter is named 'nobody'",
        "spec.routes.rules[1].name": "duplicate rule name 'a' (also rules[0])",
        "spec.routes.rules[1].exporters[0]": "exporter 'traces-only' does not accept logs "
        "(its signals: traces): narrow the rule's signals",
        "spec.routes.default[1]": "no exporter is named 'ghost'",
    }
    assert found["spec.routes.rules[0].match[2].regex"].startswith("not a valid regular expression: ")


def test_a_rule_that_takes_all_signals_needs_exporters_that_take_all_signals() -> None:
    found = problems({"rules": [{"name": "t", "exporters": ["traces-only"]}]})
    assert found == {
        "spec.routes.rules[0].exporters[0]": "exporter 'traces-only' does not accept metrics, logs "
        "(its signals: traces): narrow the rule's signals"
    }


def test_routes_with_neither_rules_nor_default_are_refused() -> None:
    assert problems({}) == {
        "spec.routes": "set rules or default: without either, no data would reach any exporter"
    }


def test_routing_mistakes_are_reported_alongside_field_errors() -> None:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec({"exporters": EXPORTERS, "replicas": "two", "routes": {"default": ["ghost"]}})
    assert {p.path for p in caught.value.problems} == {"spec.replicas", "spec.routes.default[0]"}


# -- identities clients cannot fake: k8sAttributes.overwrite, receivers' tenants, routes by tenant ------


def spec_problems(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec({"exporters": EXPORTERS, **body})
    return {p.path: p.message for p in caught.value.problems}


def token(name: str, key: str = "token") -> dict[str, Any]:
    return {"name": name, "key": key}


TENANTS = {
    "tenants": [
        {"name": "ta", "bearerTokenSecret": token("ta")},
        {"name": "tb", "bearerTokenSecret": token("tb")},
    ]
}


def test_tenants_and_routes_by_tenant_are_accepted() -> None:
    parsed = rules.validate_spec(
        {
            "exporters": EXPORTERS,
            "receivers": {
                "otlp": {"grpc": {"auth": TENANTS}, "http": {"auth": {"tenants": TENANTS["tenants"][:1]}}}
            },
            "routes": {"rules": [{"name": "a", "tenants": ["ta", "tb"], "exporters": ["team-a"]}]},
        }
    )
    auth = parsed.receivers.otlp.grpc.auth
    assert (
        auth is not None
        and auth.bearer_token_secret is None
        and [t.name for t in auth.tenants] == ["ta", "tb"]
    )
    assert parsed.routes is not None and parsed.routes.rules[0].tenants == ["ta", "tb"]


def test_every_tenant_mistake_is_reported_at_its_path() -> None:
    found = spec_problems(
        {
            "receivers": {
                "otlp": {
                    "grpc": {
                        "auth": {
                            "bearerTokenSecret": token("shared"),
                            "tenants": [
                                {"name": "ta", "bearerTokenSecret": token("ta")},
                                {"name": "ta", "bearerTokenSecret": token("ta2")},
                                {"name": "tc", "bearerTokenSecret": token("shared")},
                            ],
                        }
                    },
                    "http": {"auth": {}},
                }
            },
            "routes": {"rules": [{"name": "r", "tenants": ["ta", "nobody", "ta"], "exporters": ["team-a"]}]},
        }
    )
    assert found == {
        "spec.receivers.otlp.grpc.auth.tenants[1].name": "duplicate tenant 'ta' (also tenants[0])",
        "spec.receivers.otlp.grpc.auth.tenants[2].bearerTokenSecret": "the same Secret key as "
        "receivers.otlp.grpc.auth.bearerTokenSecret: each tenant needs its own token",
        "spec.receivers.otlp.http.auth": "set bearerTokenSecret, tenants, or both: without a token nobody "
        "gets in",
        "spec.routes.rules[0].tenants": "lists a tenant twice",
        "spec.routes.rules[0].tenants[1]": "no enabled receiver authenticates tenant 'nobody' "
        "(receivers.otlp.*.auth.tenants): this rule would never match",
    }


def test_a_tenant_of_a_disabled_receiver_cannot_be_routed_on() -> None:
    found = spec_problems(
        {
            "receivers": {"otlp": {"http": {"enabled": False, "auth": TENANTS}}},
            "routes": {"rules": [{"name": "r", "tenants": ["ta"], "exporters": ["team-a"]}]},
        }
    )
    assert list(found) == ["spec.routes.rules[0].tenants[0]"]


@pytest.mark.parametrize(
    ("mode", "overwrite", "message"),
    [
        (
            "daemonset",
            ["k8s.namespace.name"],
            "a daemonset agent does not set k8s.namespace.name, so it cannot overwrite it; it sets: "
            "k8s.node.name",
        ),
        (
            "deployment",
            ["k8s.cluster.name"],
            "a deployment agent does not set k8s.cluster.name, so it cannot overwrite it; it sets: nothing "
            "(set clusterName for k8s.cluster.name)",
        ),
        (
            "sidecar",
            ["service.name"],
            "a sidecar agent does not set service.name, so it cannot overwrite it; it sets: "
            "k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.node.name",
        ),
    ],
)
def test_only_what_the_agent_sets_can_be_overwritten(mode: str, overwrite: list[str], message: str) -> None:
    extra = {"replicas": 1} if mode == "deployment" else {}
    found = spec_problems({"mode": mode, **extra, "processors": {"k8sAttributes": {"overwrite": overwrite}}})
    assert found == {"spec.processors.k8sAttributes.overwrite[0]": message}


def test_overwriting_the_cluster_name_needs_it_set_and_twice_is_a_mistake() -> None:
    ok = rules.validate_spec(
        {
            "exporters": EXPORTERS,
            "processors": {"k8sAttributes": {"clusterName": "prod", "overwrite": ["k8s.cluster.name"]}},
        }
    )
    assert ok.processors.k8s_attributes is not None
    found = spec_problems(
        {"processors": {"k8sAttributes": {"clusterName": "prod", "overwrite": ["k8s.cluster.name"] * 2}}}
    )
    assert found == {"spec.processors.k8sAttributes.overwrite[1]": "lists k8s.cluster.name twice"}
