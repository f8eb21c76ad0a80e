"""Derived names and labels: verbatim when they fit, shortened with a hash when they do not."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st
from otlp_agent.api import loader, spec
from otlp_operator import naming


def pipeline(name: str, namespace: str = "obs", mode: str = "deployment") -> loader.OTLPPipeline:
    body = {"mode": mode, "exporters": [{"name": "out", "debug": {}}]}
    return loader.OTLPPipeline(name, namespace, spec.OTLPPipelineSpec.model_validate(body))


def all_names(p: loader.OTLPPipeline) -> list[str]:
    return [
        naming.workload(p),
        naming.service(p),
        naming.service_account(p),
        naming.config_map(p, "0123456789"),
        naming.queue_claim(p),
        naming.pod_disruption_budget(p),
        naming.autoscaler(p),
    ]


def test_short_names_are_used_verbatim() -> None:
    p = pipeline("gateway")
    assert naming.workload(p) == "gateway-agent"
    assert naming.service(p) == "gateway-otlp"
    assert naming.config_map(p, "0123456789") == "gateway-config-0123456789"
    assert naming.queue_claim(p) == "gateway-queue"


def test_a_name_that_just_fits_is_not_touched() -> None:
    name = "a" * (63 - len("-agent"))
    assert naming.workload(pipeline(name)) == f"{name}-agent"


def test_long_names_are_cut_to_63_characters_and_keep_their_suffix() -> None:
    p = pipeline("a" * 100)
    for name in all_names(p):
        assert len(name) <= 63 and naming.is_dns_label(name), name
    assert naming.config_map(p, "0123456789").endswith("-config-0123456789")
    assert naming.workload(p).endswith("-agent")


def test_two_long_names_with_a_common_prefix_do_not_collide() -> None:
    first, second = (
        pipeline("shared-prefix-" + "x" * 80 + "-one"),
        pipeline("shared-prefix-" + "x" * 80 + "-two"),
    )
    for a, b in zip(all_names(first), all_names(second), strict=True):
        assert a != b


def test_dotted_names_become_labels_without_colliding_with_the_dashed_spelling() -> None:
    dotted, dashed = pipeline("payments.eu"), pipeline("payments-eu")
    assert naming.is_dns_label(naming.workload(dotted))
    assert naming.workload(dotted) != naming.workload(dashed)
    assert naming.workload(dashed) == "payments-eu-agent"


def test_a_service_name_always_starts_with_a_letter_without_taking_another_pipelines_name() -> None:
    name = naming.service(pipeline("1st-gateway"))
    assert name[0].isalpha() and naming.is_dns_label(name)
    assert name.endswith("-otlp")
    assert name != naming.service(pipeline("p-1st-gateway"))


def test_long_label_values_are_shortened_and_stay_distinct() -> None:
    a, b = naming.label_value("x" * 70 + ".a"), naming.label_value("x" * 70 + ".b")
    assert naming.is_label_value(a) and naming.is_label_value(b) and a != b
    assert naming.label_value("payments.eu") == "payments.eu"


def test_selector_labels_are_a_subset_of_the_labels_and_ignore_the_mode() -> None:
    p = pipeline("gw")
    assert naming.selector_labels(p).items() <= naming.labels(p).items()
    assert naming.labels(p)["app.kubernetes.io/component"] == "gateway"
    assert naming.selector_labels(p) == {
        "app.kubernetes.io/instance": "gw",
        "app.kubernetes.io/name": "otlp-agent",
        "telemetry.otlp-operator.io/pipeline": "gw",
    }


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/otlp-operator/otlp-agent:0.1.0", "0.1.0"),
        ("registry.local:5000/otlp-agent:v2-rc.1", "v2-rc.1"),
        ("registry.local:5000/otlp-agent", "latest"),
        ("otlp-agent:1.2@sha256:" + "ab" * 32, "1.2"),
        ("mirror/otlp-agent@sha256:" + "0123456789" * 6 + "abcd", "sha256-012345678901"),
        ("agent:" + "x" * 100, "x" * 54 + "-" + naming.short_hash("x" * 100)),
    ],
)
def test_the_version_label_is_the_agent_images_tag(image: str, version: str) -> None:
    assert naming.version_label(image) == version
    assert naming.is_label_value(version)


def test_the_component_says_what_the_agents_are() -> None:
    assert [naming.component(pipeline("p", mode=m)) for m in ("deployment", "daemonset", "sidecar")] == [
        "gateway",
        "node-agent",
        "sidecar",
    ]


def test_the_validity_checks_refuse_what_kubernetes_refuses() -> None:
    assert not naming.is_dns_label("Upper")
    assert not naming.is_dns_label("trailing-")
    assert not naming.is_dns_label("a" * 64)
    assert not naming.is_label_value("-leading")
    assert naming.is_label_value("")


LABEL = r"[a-z0-9]([-a-z0-9]{0,80}[a-z0-9])?"
SUBDOMAIN = st.from_regex(rf"{LABEL}(\.{LABEL}){{0,3}}", fullmatch=True)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(SUBDOMAIN, SUBDOMAIN, st.booleans())
def test_any_two_pipeline_names_give_valid_distinct_object_names(first: str, other: str, near: bool) -> None:
    # `near` pits a name against its own "p-" spelling, the one the Service name's prefix could confuse.
    second = f"p-{first}" if near else other
    hypothesis.assume(first != second and len(first) <= 253 and len(second) <= 253)
    a, b = all_names(pipeline(first)), all_names(pipeline(second))
    for name in (*a, *b):
        assert naming.is_dns_label(name), name
    assert naming.is_label_value(naming.label_value(first))
    for x, y in zip(a, b, strict=True):
        assert x != y
