"""k8sAttributes sets only what is true where the agent runs, by rewriting resources on the wire: added where
missing, and stamped over what the client said for the attributes in `overwrite` (by default a sidecar's
pod identity); items, scopes and every other attribute come through unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline import enrich

from tests.support.placed_requests import assert_rightly_placed, placed_items, request, serialize

ENV = {
    "OTLP_AGENT_POD_NAMESPACE": "shop",
    "OTLP_AGENT_POD_NAME": "checkout-7d9f-abcde",
    "OTLP_AGENT_POD_UID": "0b3c-uid",
    "OTLP_AGENT_NODE_NAME": "node-7",
}


def pipeline_spec(mode: str, **k8s: Any) -> spec.OTLPPipelineSpec:
    return spec.OTLPPipelineSpec.model_validate(
        {"mode": mode, "exporters": [{"name": "b", "debug": {}}], "processors": {"k8sAttributes": k8s}}
    )


# --- what is added, by mode ----------------------------------------------------------------------------


def test_a_sidecar_adds_its_pod_identity_and_the_cluster() -> None:
    assert enrich.attributes_for(pipeline_spec("sidecar", clusterName="prod-eu"), ENV) == {
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "checkout-7d9f-abcde",
        "k8s.pod.uid": "0b3c-uid",
        "k8s.node.name": "node-7",
        "k8s.cluster.name": "prod-eu",
    }


def test_a_node_agent_adds_only_the_node_and_the_cluster_never_its_own_pod() -> None:
    assert enrich.attributes_for(pipeline_spec("daemonset", clusterName="prod-eu"), ENV) == {
        "k8s.node.name": "node-7",
        "k8s.cluster.name": "prod-eu",
    }


def test_a_gateway_adds_only_the_cluster() -> None:
    assert enrich.attributes_for(pipeline_spec("deployment", clusterName="prod-eu"), ENV) == {
        "k8s.cluster.name": "prod-eu"
    }
    assert enrich.attributes_for(pipeline_spec("deployment"), ENV) == {}


def test_unset_or_empty_downward_api_variables_add_nothing() -> None:
    env = {"OTLP_AGENT_POD_NAME": "", "OTLP_AGENT_NODE_NAME": "node-1"}
    assert enrich.attributes_for(pipeline_spec("sidecar"), env) == {"k8s.node.name": "node-1"}


def test_without_k8s_attributes_nothing_is_added() -> None:
    plain = spec.OTLPPipelineSpec.model_validate(
        {"mode": "sidecar", "exporters": [{"name": "b", "debug": {}}]}
    )
    assert enrich.attributes_for(plain, ENV) == {}


# --- the rewrite -----------------------------------------------------------------------------------------


ADD = {"k8s.node.name": "node-7", "k8s.cluster.name": "prod-eu"}


def resource_attributes(signal: Signal, data: bytes) -> list[dict[str, str]]:
    message = wire.parse(signal, data)
    entries = getattr(message, message.DESCRIPTOR.fields_by_number[1].name)
    return [{kv.key: kv.value.string_value for kv in entry.resource.attributes} for entry in entries]


def text(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


@pytest.mark.parametrize("signal", list(Signal))
def test_missing_attributes_are_added_to_every_resource_and_items_are_untouched(signal: Signal) -> None:
    message = request(signal, [[2, 3], [], [1]])
    data = serialize(message)
    enriched = enrich.Enricher(ADD).apply(data)
    assert resource_attributes(signal, enriched) == [{"r": str(r), **ADD} for r in range(3)]
    assert list(placed_items(signal, wire.parse(signal, enriched))) == list(placed_items(signal, message))
    assert_rightly_placed(signal, wire.parse(signal, enriched))
    assert wire.validate_and_count(signal, enriched) == wire.validate_and_count(signal, data)


def test_items_are_copied_as_bytes_not_re_encoded() -> None:
    message = request(Signal.traces, [[4, 1]])
    enriched = wire.parse(Signal.traces, enrich.Enricher(ADD).apply(serialize(message)))
    for before, after in zip(
        message.resource_spans[0].scope_spans, enriched.resource_spans[0].scope_spans, strict=True
    ):
        assert serialize(after) == serialize(before)
    assert enriched.resource_spans[0].schema_url == message.resource_spans[0].schema_url


def test_an_attribute_the_data_already_has_is_never_changed() -> None:
    message = request(Signal.logs, [[1], [1]])
    message.resource_logs[0].resource.attributes.append(text("k8s.node.name", "the-apps-own-node"))
    message.resource_logs[1].resource.attributes.extend(
        [
            text("k8s.node.name", ""),
            common_pb2.KeyValue(key="k8s.cluster.name", value=common_pb2.AnyValue(int_value=3)),
        ]
    )
    enriched = wire.parse(Signal.logs, enrich.Enricher(ADD).apply(serialize(message)))
    first = {kv.key: kv.value.string_value for kv in enriched.resource_logs[0].resource.attributes}
    assert first == {"r": "0", "k8s.node.name": "the-apps-own-node", "k8s.cluster.name": "prod-eu"}
    second = list(enriched.resource_logs[1].resource.attributes)
    assert [kv.key for kv in second] == ["r", "k8s.node.name", "k8s.cluster.name"]
    assert second[2].value.int_value == 3


def test_a_request_that_has_everything_is_passed_on_as_the_same_bytes_object() -> None:
    message = request(Signal.traces, [[3]])
    message.resource_spans[0].resource.attributes.extend(text(key, value) for key, value in ADD.items())
    data = serialize(message)
    assert enrich.Enricher(ADD).apply(data) is data


def test_a_resource_entry_without_a_resource_gets_one() -> None:
    message = request(Signal.traces, [[2]])
    message.resource_spans[0].ClearField("resource")
    enriched = enrich.Enricher(ADD).apply(serialize(message))
    assert resource_attributes(Signal.traces, enriched) == [ADD]
    assert wire.validate_and_count(Signal.traces, enriched) == 2


def test_a_resource_split_over_several_fields_is_merged_as_a_parser_would() -> None:
    message = request(Signal.traces, [[1]])
    data = serialize(message)
    # Append a second occurrence of the entry's resource field: parsers merge it into the first.
    [(start, value_start, end)] = list(wire.resource_entries(data))
    extra = wire.length_delimited(wire.RESOURCE, wire.string_attribute("k8s.node.name", "set-later"))
    entry = wire.length_delimited(wire.RESOURCE_ENTRY, data[value_start:end] + extra)
    enriched = enrich.Enricher(ADD).apply(data[:start] + entry + data[end:])
    assert resource_attributes(Signal.traces, enriched) == [
        {"r": "0", "k8s.node.name": "set-later", "k8s.cluster.name": "prod-eu"}
    ]


def test_repeated_resources_give_the_same_result_from_the_cache() -> None:
    enricher = enrich.Enricher(ADD)
    data = serialize(request(Signal.metrics, [[1], [2]]))
    assert enricher.apply(data) == enricher.apply(data)
    assert resource_attributes(Signal.metrics, enricher.apply(data)) == [{"r": "0", **ADD}, {"r": "1", **ADD}]


# --- overwrite: identities clients cannot fake -------------------------------------------------------------

POD = {"k8s.namespace.name": "team-a", "k8s.pod.name": "web-1"}


def test_a_sidecar_overwrites_its_pod_identity_by_default_and_other_modes_nothing() -> None:
    sidecar = pipeline_spec("sidecar").processors.k8s_attributes
    assert sidecar is not None and sidecar.overwritten(spec.Mode.sidecar) == (
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.pod.uid",
        "k8s.node.name",
    )
    for mode in (spec.Mode.daemonset, spec.Mode.deployment):
        assert sidecar.overwritten(mode) == ()
    assert spec.K8sAttributes(overwrite=[]).overwritten(spec.Mode.sidecar) == ()


@pytest.mark.parametrize("signal", list(Signal))
def test_a_forged_value_is_replaced_and_every_copy_of_it_removed(signal: Signal) -> None:
    message = request(signal, [[2], [1]])
    entries = getattr(message, message.DESCRIPTOR.fields_by_number[1].name)
    entries[0].resource.attributes.extend(
        [text("k8s.namespace.name", "team-b"), text("service.name", "web"), text("k8s.namespace.name", "x")]
    )
    entries[1].resource.attributes.append(
        common_pb2.KeyValue(key="k8s.namespace.name", value=common_pb2.AnyValue(int_value=7))
    )
    data = serialize(message)
    enriched = enrich.Enricher(POD, overwrite=["k8s.namespace.name"]).apply(data)
    parsed = getattr(wire.parse(signal, enriched), message.DESCRIPTOR.fields_by_number[1].name)
    keys = [[kv.key for kv in entry.resource.attributes] for entry in parsed]
    assert keys == [
        ["r", "service.name", "k8s.namespace.name", "k8s.pod.name"],
        ["r", "k8s.namespace.name", "k8s.pod.name"],
    ]
    assert resource_attributes(signal, enriched) == [
        {"r": "0", "service.name": "web", **POD},
        {"r": "1", **POD},
    ]
    assert list(placed_items(signal, wire.parse(signal, enriched))) == list(placed_items(signal, message))


def test_an_attribute_not_in_overwrite_keeps_the_clients_value() -> None:
    message = request(Signal.traces, [[1]])
    message.resource_spans[0].resource.attributes.append(text("k8s.pod.name", "the-apps-own"))
    enriched = enrich.Enricher(POD, overwrite=["k8s.namespace.name"]).apply(serialize(message))
    assert resource_attributes(Signal.traces, enriched) == [
        {"r": "0", "k8s.pod.name": "the-apps-own", "k8s.namespace.name": "team-a"}
    ]


def test_a_resource_that_already_holds_the_agents_values_is_passed_on_as_the_same_bytes() -> None:
    # The common case: injection set OTEL_RESOURCE_ATTRIBUTES to the very values the sidecar stamps.
    message = request(Signal.traces, [[3]])
    message.resource_spans[0].resource.attributes.extend(text(key, value) for key, value in POD.items())
    data = serialize(message)
    assert enrich.Enricher(POD, overwrite=POD).apply(data) is data


def test_for_spec_stamps_only_what_this_mode_knows() -> None:
    enricher = enrich.for_spec(pipeline_spec("sidecar", overwrite=["k8s.pod.name"]), ENV)
    assert enricher is not None and enricher.overwrite == {"k8s.pod.name"}
    assert enrich.for_spec(pipeline_spec("deployment"), ENV) is None, (
        "a gateway without clusterName sets nothing"
    )
