"""What validation (agent, webhook, operator) tells a user about `processors.resource`, `.attributes`,
`.filter` and `.sampling`: each mistake at the field path they would edit, all of them at once."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules, spec

from tests.support import spec_problems

EXPORTER = {"name": "backend", "endpoint": "collector:4317"}


def problems(processors: dict[str, Any]) -> list[tuple[str, str]]:
    return spec_problems.all_problems({"exporters": [EXPORTER], "processors": processors})


def valid(processors: dict[str, Any]) -> spec.Processors:
    return rules.validate_spec({"exporters": [EXPORTER], "processors": processors}).processors


def test_the_existing_names_work_and_are_no_longer_refused_as_not_implemented() -> None:
    parsed = valid(
        {
            "resource": {"actions": [{"key": "a", "action": "delete"}]},
            "attributes": {"actions": [{"key": "a", "action": "hash"}]},
            "sampling": {"ratio": 0.5},
        }
    )
    assert parsed.sampling is not None and parsed.sampling.ratio == 0.5
    assert parsed.sampling.signals == [spec.Signal.traces]  # logs are sampled only when asked


def test_a_regex_that_could_backtrack_is_refused_by_re2_at_its_field() -> None:
    found = problems(
        {
            "attributes": {"actions": [{"key": "card", "action": "redact", "regex": "(\\d+)\\1"}]},
            "filter": {"rules": [{"name": "r", "all": [{"spanName": {"regex": "(?=GET)"}}]}]},
        }
    )
    assert [path for path, _ in found] == [
        "spec.processors.attributes.actions[0].regex",
        "spec.processors.filter.rules[0].all[0].spanName.regex",
    ]
    assert all(message.startswith("not a valid RE2 pattern: ") for _, message in found)


def test_nested_repetition_is_accepted_because_re2_runs_it_in_linear_time() -> None:
    valid({"filter": {"rules": [{"name": "r", "all": [{"body": {"regex": "(a+)+$"}}]}]}})


@pytest.mark.parametrize(
    ("action", "path", "message"),
    [
        ({"action": "delete"}, "actions[0]", "set exactly one of key, keyRegex"),
        ({"key": "a", "keyRegex": "a", "action": "delete"}, "actions[0]", "set exactly one of key, keyRegex"),
        ({"key": "a", "action": "upsert"}, "actions[0]", "upsert needs exactly one of value, fromAttribute"),
        ({"keyRegex": "a.*", "action": "insert", "value": "v"}, "actions[0].keyRegex", "insert needs a key"),
        (
            {"key": "a", "action": "delete", "value": "v"},
            "actions[0].value",
            "only for insert, update, upsert",
        ),
        ({"key": "a", "action": "redact"}, "actions[0].regex", "redact needs the regex of what to replace"),
        ({"key": "a", "action": "hash", "regex": "x"}, "actions[0].regex", "only for redact"),
        ({"key": "a", "action": "update", "fromAttribute": "a"}, "actions[0].fromAttribute", "onto itself"),
    ],
)
def test_an_action_without_what_it_needs_is_refused_at_its_field(
    action: dict[str, Any], path: str, message: str
) -> None:
    found = problems({"attributes": {"actions": [action]}})
    assert len(found) == 1, found
    assert found[0][0] == f"spec.processors.attributes.{path}"
    assert message in found[0][1]


def test_conflicting_actions_name_the_earlier_one() -> None:
    found = problems(
        {
            "resource": {
                "actions": [
                    {"key": "env", "action": "upsert", "value": "prod"},
                    {"key": "env", "action": "upsert", "value": "staging"},
                    {"key": "host", "action": "delete"},
                    {"key": "host", "action": "hash"},
                ]
            }
        }
    )
    assert found == [
        ("spec.processors.resource.actions[1]", "conflicts with actions[0], which also sets 'env'"),
        ("spec.processors.resource.actions[3]", "has no effect: actions[2] deletes 'host' first"),
    ]


def test_actions_on_different_signals_or_with_a_match_do_not_conflict() -> None:
    valid(
        {
            "attributes": {
                "actions": [
                    {"key": "env", "action": "upsert", "value": "a", "signals": ["traces"]},
                    {"key": "env", "action": "upsert", "value": "b", "signals": ["logs"]},
                    {"key": "host", "action": "delete", "match": {"all": [{"spanKind": ["server"]}]}},
                    {"key": "host", "action": "hash"},
                ]
            }
        }
    )


def test_resource_actions_can_only_match_resource_attributes() -> None:
    found = problems(
        {
            "resource": {
                "actions": [
                    {"key": "a", "action": "delete", "match": {"any": [{"spanName": {"equals": "x"}}]}}
                ]
            }
        }
    )
    assert (
        "spec.processors.resource.actions[0].match.any[0].spanName",
        "resource actions can only match resource attributes",
    ) in found


def test_a_condition_must_set_exactly_one_test() -> None:
    found = problems(
        {
            "filter": {
                "rules": [
                    {"name": "a", "all": [{}]},
                    {"name": "b", "all": [{"spanName": {"equals": "x"}, "severity": {"atLeast": "WARN"}}]},
                    {"name": "c", "any": [{"resource": {"attribute": "k", "equals": "x", "regex": "y"}}]},
                    {"name": "d", "not": [{"spanName": {"in": []}}]},
                ]
            }
        }
    )
    assert (
        "spec.processors.filter.rules[0].all[0]",
        "set exactly one test (resource, scopeName, attribute, spanName, ...)",
    ) in found
    assert (
        "spec.processors.filter.rules[1].all[0]",
        "set exactly one test (resource, scopeName, attribute, spanName, ...)",
    ) in found
    assert (
        "spec.processors.filter.rules[2].any[0].resource",
        "set exactly one of equals, in, regex, exists",
    ) in found
    assert (
        "spec.processors.filter.rules[3].not[0].spanName.in",
        "list at least one value (an empty list never matches)",
    ) in found


def test_a_condition_for_another_signal_than_its_rule_is_refused() -> None:
    found = problems(
        {
            "filter": {
                "rules": [
                    {"name": "a", "signals": ["traces", "logs"], "all": [{"spanName": {"equals": "x"}}]},
                    {"name": "b", "all": [{"spanName": {"equals": "x"}}, {"severity": {"below": "WARN"}}]},
                ]
            }
        }
    )
    assert found == [
        (
            "spec.processors.filter.rules[0].all[0].spanName",
            "applies only to traces, but the rule is for logs: narrow its signals",
        ),
        (
            "spec.processors.filter.rules[1]",
            "no signal has everything its conditions test (e.g. span name and severity)",
        ),
    ]


def test_filter_rules_need_unique_names_and_a_condition() -> None:
    found = problems(
        {
            "filter": {
                "rules": [
                    {"name": "noisy", "all": [{"resource": {"attribute": "a", "exists": True}}]},
                    {"name": "noisy"},
                ]
            }
        }
    )
    assert found == [
        ("spec.processors.filter.rules[1].name", "duplicate rule name 'noisy' (also rules[0])"),
        (
            "spec.processors.filter.rules[1]",
            "list at least one condition in all, any or not (without, it would drop all)",
        ),
    ]


def test_severity_ranges_must_leave_something_to_match() -> None:
    found = problems(
        {"filter": {"rules": [{"name": "r", "all": [{"severity": {"atLeast": "ERROR", "below": "WARN"}}]}]}}
    )
    assert found == [
        (
            "spec.processors.filter.rules[0].all[0].severity",
            "atLeast must be a lower severity than below (nothing would match)",
        )
    ]


def test_sampling_refuses_metrics_and_ratios_below_what_56_bits_express() -> None:
    found = problems({"sampling": {"ratio": 1e-18, "signals": ["traces", "metrics"]}})
    assert found == [
        ("spec.processors.sampling.signals", "metrics cannot be sampled (only traces and logs)"),
        ("spec.processors.sampling.ratio", "the smallest ratio above 0 is 2^-56"),
    ]


def test_sampling_bounds_are_field_errors() -> None:
    found = problems({"sampling": {"ratio": 1.5, "precision": 15, "hashSeed": -1}})
    assert {path for path, _ in found} == {
        "spec.processors.sampling.ratio",
        "spec.processors.sampling.precision",
        "spec.processors.sampling.hashSeed",
    }


def test_every_processor_problem_is_reported_in_one_pass_with_the_others() -> None:
    found = problems(
        {
            "memoryLimiter": {"limit": "64Mi", "spikeLimit": "64Mi"},
            "attributes": {"actions": [{"key": "a", "action": "redact", "regex": "("}]},
            "filter": {"rules": [{"name": "r", "all": [{"metricName": {"regex": "["}}]}]},
        }
    )
    assert [path for path, _ in found] == [
        "spec.processors.memoryLimiter.spikeLimit",
        "spec.processors.attributes.actions[0].regex",
        "spec.processors.filter.rules[0].all[0].metricName.regex",
    ]
