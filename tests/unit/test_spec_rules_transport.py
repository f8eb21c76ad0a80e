"""What a user is told about compression auto, connection pools and batch timeout auto: every problem with
the field path to edit, and the defaults they get when the spec is valid."""

from __future__ import annotations

import pytest
from otlp_agent.api import rules, spec

from tests.support.spec_problems import all_problems

GRPC = {"name": "backend", "endpoint": "collector:4317"}
HTTP = {"name": "backend", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}


def test_compression_auto_with_its_defaults_is_valid_over_both_protocols() -> None:
    for exporter in (GRPC, HTTP):
        parsed = rules.validate_spec({"exporters": [{**exporter, "compression": "auto"}]})
        assert parsed.exporters[0].compression == spec.Compression.auto
        assert parsed.exporters[0].compression_auto is None  # its defaults apply
    auto = spec.CompressionAuto()
    assert (auto.cpu_budget, auto.evaluate_every, auto.sample_size) == (0.005, 60.0, 128 * 1024)


def test_every_bad_candidate_is_named_with_what_to_write_instead() -> None:
    candidates = ["zstd", "br", "gzip:9", "gzip:2", "none:1", "zstd"]
    body = {"exporters": [{**GRPC, "compression": "auto", "compressionAuto": {"candidates": candidates}}]}
    found = all_problems(body)
    path = "spec.exporters[0].compressionAuto.candidates"
    assert found == [
        (f"{path}[0]", "zstd is only available over HTTP (gRPC clients cannot send it)"),
        (f"{path}[1]", "'br': use none, gzip, deflate or zstd, optionally with :level (e.g. zstd:3)"),
        (f"{path}[2]", "gzip levels go from 1 to 3"),
        (f"{path}[3]", "gRPC compresses at a level of its own: give gzip or deflate without a level"),
        (f"{path}[4]", "none has no levels"),
        (f"{path}[5]", "zstd is only available over HTTP (gRPC clients cannot send it)"),
        (path, "lists a candidate twice"),
    ]


def test_http_candidates_may_carry_levels() -> None:
    auto = {"candidates": ["zstd:3", "zstd", "gzip:2", "deflate", "none"], "cpuBudget": "20ms"}
    parsed = rules.validate_spec({"exporters": [{**HTTP, "compression": "auto", "compressionAuto": auto}]})
    assert parsed.exporters[0].compression_auto is not None
    assert parsed.exporters[0].compression_auto.cpu_budget == 0.02


def test_compression_auto_settings_without_compression_auto_are_a_mistake() -> None:
    body = {"exporters": [{**HTTP, "compression": "zstd", "compressionAuto": {"cpuBudget": "1ms"}}]}
    assert all_problems(body) == [("spec.exporters[0].compressionAuto", "only used with compression auto")]


def test_connection_pools_check_in_flight_per_protocol_and_refuse_the_debug_exporter() -> None:
    body = {
        "exporters": [
            {**HTTP, "connections": {"count": 4, "maxInFlight": 2}},
            {"name": "console", "debug": {}, "connections": {"count": 2}},
            {**GRPC, "name": "grpc", "connections": {"count": 4, "maxInFlight": 100}},
        ]
    }
    assert all_problems(body) == [
        (
            "spec.exporters[0].connections.maxInFlight",
            "HTTP/1.1 carries one request at a time on a connection: raise connections.count instead",
        ),
        ("spec.exporters[1].connections", "only for exporters that send (the debug exporter opens none)"),
    ]


def test_connection_pool_bounds_are_in_the_users_units() -> None:
    body = {"exporters": [{**GRPC, "connections": {"count": 0, "idleTimeout": "2h"}}]}
    found = dict(all_problems(body))
    assert found["spec.exporters[0].connections.count"] == "Input should be greater than or equal to 1"
    assert found["spec.exporters[0].connections.idleTimeout"] == "must be at most 1h"


def test_batch_timeout_auto_and_its_bounds() -> None:
    parsed = rules.validate_spec({"exporters": [GRPC], "processors": {"batch": {"timeout": "auto"}}})
    assert parsed.processors.batch.timeout == spec.AUTO
    assert parsed.processors.batch.timeout_bounds == (0.02, 1.0)
    bounds = {"timeout": "auto", "minTimeout": "2s", "maxTimeout": "500ms"}
    assert all_problems({"exporters": [GRPC], "processors": {"batch": bounds}}) == [
        ("spec.processors.batch.minTimeout", "must not exceed maxTimeout")
    ]
    fixed = {"timeout": "200ms", "maxTimeout": "2s"}
    assert all_problems({"exporters": [GRPC], "processors": {"batch": fixed}}) == [
        ("spec.processors.batch.maxTimeout", "only used with timeout auto")
    ]


@pytest.mark.parametrize(
    ("timeout", "message"),
    [("fast", "'fast' is not a duration"), ("0ms", "must be at least 1ms"), ("2m", "must be at most 1m")],
)
def test_a_batch_timeout_is_a_duration_or_auto(timeout: str, message: str) -> None:
    found = dict(all_problems({"exporters": [GRPC], "processors": {"batch": {"timeout": timeout}}}))
    assert found["spec.processors.batch.timeout"].startswith(message)


def test_the_rendered_spec_keeps_auto_as_written() -> None:
    parsed = rules.validate_spec(
        {"exporters": [{**HTTP, "compression": "auto"}], "processors": {"batch": {"timeout": "auto"}}}
    )
    dumped = spec.dump(parsed)
    assert dumped["processors"]["batch"] == {"maxItems": 8192, "maxBytes": "4Mi", "timeout": "auto"}
    assert rules.validate_spec(dumped) == parsed


def test_the_websocket_receiver_is_off_by_default_and_needs_the_http_receiver() -> None:
    parsed = rules.validate_spec({"exporters": [GRPC]})
    assert parsed.receivers.otlp.websocket is None
    on = {"websocket": {"enabled": True}}
    parsed = rules.validate_spec({"exporters": [GRPC], "receivers": {"otlp": on}})
    assert (
        parsed.receivers.otlp.websocket is not None
        and parsed.receivers.otlp.websocket.path == "/v1/websocket"
    )
    body = {
        "exporters": [GRPC],
        "receivers": {
            "otlp": {"http": {"enabled": False}, "websocket": {"enabled": True, "path": "/v1/logs"}}
        },
    }
    assert all_problems(body) == [
        ("spec.receivers.otlp.websocket.enabled", "needs receivers.otlp.http (it serves on its port)"),
        ("spec.receivers.otlp.websocket.path", "is an OTLP/HTTP path: choose another"),
    ]
