"""Routes decide per resource entry, on the wire: each exporter gets exactly the entries routed to it, every
item once, resources and scopes intact; data no route takes is counted as unrouted; requests that go one
way are passed on as the very bytes object that came in."""

from __future__ import annotations

import collections
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline import routing

from tests.support.placed_requests import assert_rightly_placed, placed_items, request, serialize

ALL = frozenset(Signal)


def routes(rules: list[dict[str, Any]], default: list[str] | None = None) -> spec.Routes:
    return spec.Routes.model_validate({"rules": rules, "default": default or []})


def rule(name: str, exporters: list[str], *match: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "exporters": exporters, "match": list(match), **extra}


def team_request(signal: Signal, teams: list[str | None], items: int = 3) -> Any:
    """A request with one resource per entry of `teams` (two scopes of `items` items each); resource r gets
    k8s.namespace.name=teams[r] unless None."""
    message = request(signal, [[items, items] for _ in teams])
    entries = getattr(message, message.DESCRIPTOR.fields_by_number[1].name)
    for entry, team in zip(entries, teams, strict=True):
        if team is not None:
            entry.resource.attributes.append(text("k8s.namespace.name", team))
    return message


def text(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def resources_in(signal: Signal, data: bytes) -> list[str]:
    """The r attributes of the resource entries in `data`, sorted."""
    message = wire.parse(signal, data)
    return sorted({r for _, r, *_ in placed_items(signal, message)})


def items_in(signal: Signal, data: bytes) -> collections.Counter[str]:
    return collections.Counter(name for name, *_ in placed_items(signal, wire.parse(signal, data)))


def route(router: routing.Router, signal: Signal, message: Any) -> tuple[bytes, routing.Routed]:
    data = serialize(message)
    return data, router.route(signal, data, wire.validate_and_count(signal, data))


TEAMS = routes(
    [
        rule("team-a", ["a"], {"attribute": "k8s.namespace.name", "equals": "team-a"}),
        rule("team-b", ["b"], {"attribute": "k8s.namespace.name", "in": ["team-b", "team-b2"]}),
    ],
    default=["shared"],
)
EXPORTERS = {"a": ALL, "b": ALL, "shared": ALL}


# --- one request, several destinations ---------------------------------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
def test_each_exporter_gets_exactly_its_resources_with_every_item_once(signal: Signal) -> None:
    router = routing.Router(TEAMS, EXPORTERS)
    data, routed = route(router, signal, team_request(signal, ["team-a", "team-b", None, "team-b2", "x"]))
    assert {name: resources_in(signal, part) for name, (part, _) in routed.deliveries.items()} == {
        "a": ["0"],
        "b": ["1", "3"],
        "shared": ["2", "4"],
    }
    delivered = sum((items_in(signal, part) for part, _ in routed.deliveries.values()), collections.Counter())
    assert delivered == items_in(signal, data), "every item once, none invented"
    for part, count in routed.deliveries.values():
        assert count == wire.validate_and_count(signal, part)
        assert_rightly_placed(signal, wire.parse(signal, part))
    # Test items are one span, log record or one-point gauge each: 6 per resource.
    assert routed.per_route == {"team-a": 6, "team-b": 12, "_default": 12}
    assert routed.unrouted == 0


def test_resource_entries_arrive_intact() -> None:
    router = routing.Router(TEAMS, EXPORTERS)
    message = team_request(Signal.traces, ["team-a", "team-b"])
    message.resource_spans[0].resource.attributes.append(
        common_pb2.KeyValue(key="list", value=common_pb2.AnyValue(array_value=common_pb2.ArrayValue()))
    )
    _, routed = route(router, Signal.traces, message)
    got = wire.parse(Signal.traces, routed.deliveries["a"][0])
    assert [serialize(entry) for entry in got.resource_spans] == [serialize(message.resource_spans[0])]


def test_an_exporter_named_by_two_routes_gets_both_shares_once() -> None:
    both = routes(
        [
            rule("team-a", ["a", "audit"], {"attribute": "k8s.namespace.name", "equals": "team-a"}),
            rule("team-b", ["b", "audit"], {"attribute": "k8s.namespace.name", "equals": "team-b"}),
        ]
    )
    router = routing.Router(both, {"a": ALL, "b": ALL, "audit": ALL})
    _, routed = route(router, Signal.logs, team_request(Signal.logs, ["team-a", "team-b", "team-a"]))
    audit, count = routed.deliveries["audit"]
    assert resources_in(Signal.logs, audit) == ["0", "1", "2"]
    assert count == 18
    assert sum(items_in(Signal.logs, audit).values()) == 18


# --- what routes match -------------------------------------------------------------------------------


def test_the_first_matching_rule_wins() -> None:
    ordered = routes(
        [
            rule("first", ["a"], {"attribute": "k8s.namespace.name", "regex": "team-.*"}),
            rule("second", ["b"], {"attribute": "k8s.namespace.name", "equals": "team-b"}),
        ]
    )
    router = routing.Router(ordered, EXPORTERS)
    _, routed = route(router, Signal.traces, team_request(Signal.traces, ["team-b"]))
    assert list(routed.deliveries) == ["a"]
    assert routed.per_route == {"first": 6}


def test_all_matches_of_a_rule_must_hold() -> None:
    strict = routes(
        [
            rule(
                "a-prod",
                ["a"],
                {"attribute": "k8s.namespace.name", "equals": "team-a"},
                {"attribute": "deployment.environment", "exists": True},
            )
        ],
        default=["shared"],
    )
    router = routing.Router(strict, EXPORTERS)
    message = team_request(Signal.traces, ["team-a", "team-a"])
    message.resource_spans[1].resource.attributes.append(text("deployment.environment", "prod"))
    _, routed = route(router, Signal.traces, message)
    assert resources_in(Signal.traces, routed.deliveries["a"][0]) == ["1"]
    assert resources_in(Signal.traces, routed.deliveries["shared"][0]) == ["0"]


def attrs(**values: Any) -> dict[str, str | None]:
    """Attribute values as routing sees them, from a Resource built with real AnyValues."""
    resource = common_pb2.KeyValueList()
    for key, value in values.items():
        kv = resource.values.add(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        elif isinstance(value, list):
            kv.value.array_value.SetInParent()
        else:
            kv.value.string_value = value
    # A KeyValueList and a Resource both keep their key-values in field 1.
    return routing.attribute_values(resource.SerializeToString())


@pytest.mark.parametrize(
    ("match", "values", "expected"),
    [
        ({"equals": "shop"}, {"ns": "shop"}, True),
        ({"equals": "shop"}, {"ns": "shop2"}, False),
        ({"equals": "shop"}, {}, False),
        ({"in": ["a", "b"]}, {"ns": "b"}, True),
        ({"in": ["a", "b"]}, {"ns": "c"}, False),
        ({"regex": "team-[a-z]+"}, {"ns": "team-pay"}, True),
        ({"regex": "team-[a-z]+"}, {"ns": "my-team-pay"}, False),
        ({"regex": "team"}, {"ns": "team-pay"}, False),
        ({"exists": True}, {"ns": ""}, True),
        ({"exists": True}, {}, False),
        ({"exists": False}, {}, True),
        ({"exists": False}, {"ns": "x"}, False),
        ({"equals": "42"}, {"ns": 42}, True),
        ({"equals": "true"}, {"ns": True}, True),
        ({"equals": "0.5"}, {"ns": 0.5}, True),
        ({"exists": True}, {"ns": []}, True),
        ({"regex": ".*"}, {"ns": []}, False),
    ],
)
def test_match_semantics(match: dict[str, Any], values: dict[str, Any], expected: bool) -> None:
    test = routing.compile_match(spec.AttributeMatch.model_validate({"attribute": "ns", **match}))
    assert test(attrs(**values)) is expected


def test_a_rule_for_other_signals_leaves_this_one_to_the_default() -> None:
    traces_only = routes(
        [rule("team-a", ["a"], {"attribute": "k8s.namespace.name", "equals": "team-a"}, signals=["traces"])],
        default=["shared"],
    )
    router = routing.Router(traces_only, EXPORTERS)
    data, routed = route(router, Signal.logs, team_request(Signal.logs, ["team-a", "team-b"]))
    assert routed.deliveries == {"shared": (data, 12)}
    assert routed.deliveries["shared"][0] is data


def test_default_exporters_that_do_not_take_the_signal_are_skipped() -> None:
    router = routing.Router(
        routes([], default=["traces-only", "shared"]),
        {"traces-only": frozenset({Signal.traces}), "shared": ALL},
    )
    _, routed = route(router, Signal.metrics, team_request(Signal.metrics, ["x"]))
    assert list(routed.deliveries) == ["shared"]


# --- the fast paths: nothing is cut when nothing needs to be ----------------------------------------


@pytest.mark.parametrize("teams", [["team-b", "team-b2"], ["x", None]], ids=["all-one-rule", "all-default"])
def test_a_request_that_goes_one_way_is_passed_on_as_the_same_bytes_object(teams: list[str | None]) -> None:
    router = routing.Router(TEAMS, EXPORTERS)
    data, routed = route(router, Signal.traces, team_request(Signal.traces, teams))
    [(part, count)] = routed.deliveries.values()
    assert part is data
    assert count == 12


def test_a_first_rule_without_matches_takes_everything_without_reading_resources() -> None:
    catch_all = routes([rule("all", ["a"]), rule("never", ["b"], {"attribute": "x", "exists": True})])
    router = routing.Router(catch_all, EXPORTERS)
    garbage_resources = b"\x0a\x03\x0a\x01\xff"  # not even a valid Resource: it is never looked at
    routed = router.route(Signal.traces, garbage_resources, 0)
    assert routed.deliveries == {"a": (garbage_resources, 0)}


# --- unrouted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
def test_data_no_route_takes_is_counted_as_unrouted_and_sent_nowhere(signal: Signal) -> None:
    no_default = routes(TEAMS.model_dump(by_alias=True)["rules"])
    router = routing.Router(no_default, EXPORTERS)
    _, routed = route(router, signal, team_request(signal, ["team-a", "nobody", None]))
    assert routed.unrouted == 12
    assert list(routed.deliveries) == ["a"]
    assert resources_in(signal, routed.deliveries["a"][0]) == ["0"]


def test_a_request_nobody_takes_is_all_unrouted() -> None:
    router = routing.Router(routes([rule("a", ["a"], {"attribute": "k", "exists": True})]), EXPORTERS)
    _, routed = route(router, Signal.traces, team_request(Signal.traces, ["x", "y"]))
    assert (routed.deliveries, routed.per_route, routed.unrouted) == ({}, {}, 12)


# --- property: whatever the shape, every item lands once, where its resource was routed -------------


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    signal=st.sampled_from(list(Signal)),
    shape=st.lists(
        st.tuples(
            st.sampled_from(["team-a", "team-b", "other", None]), st.lists(st.integers(0, 4), max_size=3)
        ),
        max_size=6,
    ),
)
def test_every_item_is_delivered_once_or_counted_unrouted(
    signal: Signal, shape: list[tuple[str | None, list[int]]]
) -> None:
    message = request(signal, [scopes for _, scopes in shape])
    entries = getattr(message, message.DESCRIPTOR.fields_by_number[1].name)
    for entry, (team, _) in zip(entries, shape, strict=True):
        if team is not None:
            entry.resource.attributes.append(text("k8s.namespace.name", team))
    router = routing.Router(routes(TEAMS.model_dump(by_alias=True)["rules"]), EXPORTERS)
    _, routed = route(router, signal, message)
    expected: dict[str, collections.Counter[str]] = {"a": collections.Counter(), "b": collections.Counter()}
    unrouted = 0
    for r, (team, scopes) in enumerate(shape):
        names = collections.Counter(f"i{r}.{s}.{n}" for s, count in enumerate(scopes) for n in range(count))
        if team == "team-a":
            expected["a"] += names
        elif team == "team-b":
            expected["b"] += names
        else:
            unrouted += sum(names.values())
    got = {name: items_in(signal, part) for name, (part, _) in routed.deliveries.items()}
    for name in ("a", "b"):
        assert got.get(name, collections.Counter()) == expected[name]
    assert {name: count for name, (_, count) in routed.deliveries.items()} == {
        name: sum(names.values()) for name, names in got.items()
    }
    assert routed.unrouted == unrouted
