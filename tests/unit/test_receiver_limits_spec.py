"""The receivers' limits in the spec: a largest request must fit the memory limit twice (or every such
request would be refused), and `maxItemsPerRequest` has a sane default and bounds."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules, spec
from otlp_agent.api.problems import SpecError
from otlp_agent.api.spec.receivers import DEFAULT_MAX_ITEMS_PER_REQUEST

from tests.support.spec_problems import with_exporter


def problems(document: dict[str, Any]) -> dict[str, str]:
    """path -> message of every problem (empty when the spec is valid)."""
    try:
        rules.validate_spec(document)
    except SpecError as exc:
        return {p.path: p.message for p in exc.problems}
    return {}


def body(limit: str, **receivers: dict[str, Any]) -> dict[str, Any]:
    return {
        **with_exporter(),
        "receivers": {"otlp": receivers},
        "processors": {"memoryLimiter": {"limit": limit, "spikeLimit": "1Mi"}},
    }


def test_request_sizes_that_could_never_be_received_within_the_memory_limit_are_refused() -> None:
    found = problems(body("16Mi"))  # default sizes (16Mi) need 32Mi
    assert found == {
        "spec.receivers.otlp.grpc.maxMessageSize": "twice this (32Mi: a compressed request and its "
        "decompressed copy) must fit in processors.memoryLimiter.limit (16Mi)",
        "spec.receivers.otlp.http.maxBodySize": "twice this (32Mi: a compressed request and its "
        "decompressed copy) must fit in processors.memoryLimiter.limit (16Mi)",
    }
    assert problems(body("16Mi", grpc={"maxMessageSize": "8Mi"}, http={"maxBodySize": "8Mi"})) == {}
    assert problems(body("16Mi", grpc={"enabled": False}, http={"maxBodySize": "4Mi"})) == {}


def test_max_items_per_request_defaults_to_a_hundred_thousand_and_is_bounded() -> None:
    receivers = spec.OtlpReceivers()
    assert receivers.grpc.max_items_per_request == receivers.http.max_items_per_request == 100_000
    assert DEFAULT_MAX_ITEMS_PER_REQUEST == 100_000
    for value, valid in ((99, False), (100, True), (1_000_000, True), (1_000_001, False)):
        found = problems({**with_exporter(), "receivers": {"otlp": {"http": {"maxItemsPerRequest": value}}}})
        assert (found == {}) == valid, (value, found)


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_connection_settings_have_bounds(kind: str) -> None:
    assert problems({**with_exporter(), "receivers": {"otlp": {kind: {"readTimeout": "0s"}}}})
    settings = spec.OtlpReceivers().grpc
    assert (settings.read_timeout, settings.max_concurrent_streams, settings.max_connection_idle) == (
        30.0,
        1000,
        300.0,
    )
