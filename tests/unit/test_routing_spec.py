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
