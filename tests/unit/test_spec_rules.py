"""What `otlp-agent validate`, the webhook and the operator tell a user about a spec: every problem, with
the field path they would edit (camelCase, as written in YAML)."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules, spec
from otlp_agent.api.problems import SpecError

from tests.support.spec_problems import GRPC, all_problems, problems, with_exporter

HTTP = {"name": "backend", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}


def paths(body: dict[str, Any]) -> set[str]:
    return {path for path, _ in all_problems(body)}


def test_a_minimal_spec_is_valid_and_filled_with_defaults() -> None:
    parsed = rules.validate_spec({"exporters": [GRPC]})
    assert parsed.mode == spec.Mode.deployment
    assert parsed.receivers.otlp.grpc.port == 4317
    assert parsed.receivers.otlp.http.port == 4318
    assert parsed.exporters[0].compression == spec.Compression.gzip


def test_duplicate_exporter_names_point_at_the_second_one_and_name_the_first() -> None:
    found = problems({"exporters": [GRPC, {**GRPC, "endpoint": "other:4317"}]})
    assert found == {"spec.exporters[1].name": "duplicate exporter name 'backend' (also exporters[0])"}


@pytest.mark.parametrize(
    "targets",
    [
        {},
        {"endpoint": "a:4317", "debug": {}},
        {"endpoint": "a:4317", "pipelineRef": {"name": "gw"}},
        {"debug": {}, "endpoints": ["a:4317", "b:4317"]},
    ],
    ids=["none", "endpoint+debug", "endpoint+pipelineRef", "debug+endpoints"],
)
def test_an_exporter_must_have_exactly_one_target(targets: dict[str, Any]) -> None:
    found = problems({"exporters": [{"name": "x", **targets}]})
    assert found["spec.exporters[0]"] == "set exactly one of endpoint, endpoints, pipelineRef, debug"


def test_zstd_over_grpc_says_it_is_only_available_over_http() -> None:
    found = problems(with_exporter(compression="zstd"))
    assert list(found) == ["spec.exporters[0].compression"]
    assert "only available over HTTP" in found["spec.exporters[0].compression"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_zstd_over_http_is_fine(protocol: str) -> None:
    parsed = rules.validate_spec({"exporters": [{**HTTP, "protocol": protocol, "compression": "zstd"}]})
    assert parsed.exporters[0].compression == spec.Compression.zstd


@pytest.mark.parametrize(
    ("compression", "level", "message"),
    [
        ("gzip", 4, "gzip levels go from 1 to 3"),
        ("deflate", 12, "deflate levels go from 1 to 3"),
        ("none", 3, "only meaningful with gzip, deflate or zstd"),
    ],
)
def test_compression_level_out_of_its_codec_range_is_reported(
    compression: str, level: int, message: str
) -> None:
    found = problems({"exporters": [{**HTTP, "compression": compression, "compressionLevel": level}]})
    assert found == {"spec.exporters[0].compressionLevel": message}


@pytest.mark.parametrize(("compression", "level"), [("gzip", 3), ("deflate", 1), ("zstd", 19)])
def test_compression_level_at_the_edge_of_its_codec_range_is_accepted(compression: str, level: int) -> None:
    parsed = rules.validate_spec(
        {"exporters": [{**HTTP, "compression": compression, "compressionLevel": level}]}
    )
    assert parsed.exporters[0].compression_level == level


@pytest.mark.parametrize("level", [0, 20])
def test_compression_level_outside_any_codec_is_a_field_error(level: int) -> None:
    found = problems({"exporters": [{**HTTP, "compression": "zstd", "compressionLevel": level}]})
    assert list(found) == ["spec.exporters[0].compressionLevel"]


def test_the_http_receiver_on_the_grpc_port_clashes() -> None:
    found = problems({**with_exporter(), "receivers": {"otlp": {"http": {"port": 4317}}}})
    assert found == {"spec.receivers.otlp.http.port": "port 4317 is already used by receivers.otlp.grpc.port"}


def test_the_telemetry_port_clashes_with_a_receiver_port() -> None:
    found = problems({**with_exporter(), "telemetry": {"port": 4318}})
    assert found == {"spec.telemetry.port": "port 4318 is already used by receivers.otlp.http.port"}


def test_a_disabled_receiver_does_not_hold_its_port() -> None:
    body = {**with_exporter(), "receivers": {"otlp": {"grpc": {"enabled": False, "port": 8888}}}}
    assert rules.validate_spec(body).receivers.otlp.grpc.enabled is False


def test_no_receiver_enabled_is_reported() -> None:
    body = {
        **with_exporter(),
        "receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"enabled": False}}},
    }
    assert problems(body) == {"spec.receivers.otlp": "enable at least one of grpc and http"}


@pytest.mark.parametrize("header", ["Content-Type", "content-encoding", "Host", "grpc-encoding", "TE"])
def test_reserved_headers_cannot_be_overridden(header: str) -> None:
    found = problems(with_exporter(headers={header: "x", "X-Tenant": "a"}))
    assert found == {f"spec.exporters[0].headers.{header}": "is set by the exporter itself"}


@pytest.mark.parametrize(
    "endpoint",
    ["collector:4317", "http://collector:4317", "https://otlp.example.com", "[::1]:4317", "10.0.0.1"],
)
def test_grpc_endpoints_are_host_port_with_an_optional_scheme(endpoint: str) -> None:
    assert rules.validate_spec(with_exporter(endpoint=endpoint)).exporters[0].endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["http://collector:4317/v1/traces", "collector:4317/x", "a b:1"])
def test_grpc_endpoints_with_a_path_or_spaces_are_refused(endpoint: str) -> None:
    found = problems(with_exporter(endpoint=endpoint))
    assert found == {
        "spec.exporters[0].endpoint": f"{endpoint!r} is not a gRPC endpoint: use host:port or http(s)://host:port"
    }


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4318", "https://otlp.example.com/v1/traces"])
def test_http_endpoints_are_urls(endpoint: str) -> None:
    assert rules.validate_spec({"exporters": [{**HTTP, "endpoint": endpoint}]})


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector", "https://"])
def test_http_endpoints_without_an_http_scheme_are_refused(endpoint: str) -> None:
    found = problems({"exporters": [{**HTTP, "protocol": "http/json", "endpoint": endpoint}]})
    assert found == {
        "spec.exporters[0].endpoint": f"{endpoint!r} is not an HTTP endpoint: use http(s)://host:port[/path]"
    }


def test_a_persistent_queue_without_storage_size_is_reported() -> None:
    found = all_problems(with_exporter(queue={"type": "persistent"}))
    assert (
        "spec.exporters[0].queue.storageSize",
        "a persistent queue needs storageSize for its volume",
    ) in found


def test_storage_size_on_a_memory_queue_is_reported() -> None:
    found = problems(with_exporter(queue={"storageSize": "1Gi"}))
    assert found == {"spec.exporters[0].queue.storageSize": "only used with queue type persistent"}


def test_durable_delivery_without_a_persistent_queue_is_reported() -> None:
    found = all_problems(with_exporter(delivery="durable"))
    assert ("spec.exporters[0].delivery", "durable delivery needs queue type persistent") in found


def test_sidecar_container_resources_outside_sidecar_mode_are_reported() -> None:
    found = all_problems({**with_exporter(), "mode": "deployment", "injection": {"resources": {}}})
    assert ("spec.injection.resources", "only for mode sidecar (other modes inject no container)") in found


@pytest.mark.parametrize(("mode", "per"), [("daemonset", "node"), ("sidecar", "pod")])
def test_replicas_only_for_gateways(mode: str, per: str) -> None:
    found = problems({**with_exporter(), "mode": mode, "replicas": 3})
    assert found == {
        "spec.replicas": f"only for mode deployment or statefulset (a {mode} runs one agent per {per})"
    }


def test_the_default_replica_count_is_fine_in_every_mode() -> None:
    for mode in ("daemonset", "sidecar"):
        assert rules.validate_spec({**with_exporter(), "mode": mode}).replicas == 1


def test_autoscaling_outside_deployments_and_inverted_bounds_are_reported() -> None:
    body = {**with_exporter(), "mode": "daemonset", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
    found = all_problems(body)
    assert ("spec.autoscaling.minReplicas", "must not exceed maxReplicas") in found
    assert ("spec.autoscaling", "only for mode deployment or statefulset") in found


@pytest.mark.parametrize(("limit", "spike"), [("64Mi", "64Mi"), ("64Mi", "100Mi"), ("32Mi", "64Mi")])
def test_spike_limit_must_be_below_the_limit(limit: str, spike: str) -> None:
    body = {**with_exporter(), "processors": {"memoryLimiter": {"limit": limit, "spikeLimit": spike}}}
    assert problems(body) == {"spec.processors.memoryLimiter.spikeLimit": "must be smaller than limit"}


def test_retry_initial_interval_above_max_interval_is_reported() -> None:
    found = problems(with_exporter(retry={"initialInterval": "1m", "maxInterval": "30s"}))
    assert found == {"spec.exporters[0].retry.initialInterval": "must not exceed retry.maxInterval"}


def test_a_signal_listed_twice_is_reported() -> None:
    assert problems(with_exporter(signals=["traces", "logs", "traces"])) == {
        "spec.exporters[0].signals": "lists a signal twice"
    }


def test_several_cross_field_problems_are_all_reported_at_once() -> None:
    body = {
        "mode": "daemonset",
        "replicas": 2,
        "telemetry": {"port": 4317},
        "processors": {"memoryLimiter": {"limit": "8Mi", "spikeLimit": "8Mi"}},
        "exporters": [
            {**GRPC, "compression": "zstd"},
            {**GRPC, "headers": {"Content-Type": "text/plain"}},
            {"name": "third", "endpoint": "collector:4317/v1", "retry": {"initialInterval": "1h"}},
        ],
    }
    assert paths(body) == {
        "spec.replicas",
        "spec.telemetry.port",
        "spec.processors.memoryLimiter.spikeLimit",
        "spec.receivers.otlp.grpc.maxMessageSize",
        "spec.receivers.otlp.http.maxBodySize",
        "spec.exporters[0].compression",
        "spec.exporters[1].name",
        "spec.exporters[1].headers.Content-Type",
        "spec.exporters[2].endpoint",
        "spec.exporters[2].retry.initialInterval",
    }


def test_several_field_errors_are_all_reported_at_once_with_camel_case_paths() -> None:
    body = {
        "mode": "gateway",
        "replicas": "many",
        "processors": {"batch": {"maxItems": 0, "timeout": "soon"}},
        "exporters": [{"name": "Bad_Name", "endpoint": "a:1", "compression": "brotli"}, GRPC],
    }
    assert paths(body) == {
        "spec.mode",
        "spec.replicas",
        "spec.processors.batch.maxItems",
        "spec.processors.batch.timeout",
        "spec.exporters[0].name",
        "spec.exporters[0].compression",
    }


def test_unknown_fields_are_reported_as_unknown_at_their_path() -> None:
    body = {"exporters": [{**GRPC, "compresion": "gzip"}], "receivers": {"otlp": {"grpcc": {}}}}
    assert problems(body) == {
        "spec.exporters[0].compresion": "unknown field",
        "spec.receivers.otlp.grpcc": "unknown field",
    }


def test_missing_required_fields_say_so() -> None:
    assert problems({}) == {"spec.exporters": "required field is missing"}
    assert problems({"exporters": [{"endpoint": "a:1"}]}) == {
        "spec.exporters[0].name": "required field is missing"
    }


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec({"exporters": [GRPC, GRPC]}, prefix="pipeline.spec")
    assert [p.path for p in caught.value.problems] == ["pipeline.spec.exporters[1].name"]
    assert (
        str(caught.value)
        == "pipeline.spec.exporters[1].name: duplicate exporter name 'backend' (also exporters[0])"
    )


def test_default_values_of_unbuilt_features_are_not_refused() -> None:
    body = {
        "allowedReferrerNamespaces": [],
        "exporters": [
            {
                **GRPC,
                "headersFrom": [],
                "tls": {"caFile": "/etc/ssl/ca.pem", "insecure": False},
                "queue": {"type": "memory"},
                "delivery": "fast",
            }
        ],
    }
    parsed = rules.validate_spec(body)
    assert parsed.exporters[0].delivery == spec.Delivery.fast


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("16Mi", 16 * 1024 * 1024),
        (16777216, 16 * 1024 * 1024),
        ("2048Ki", 2 * 1024 * 1024),
        ("4M", 4_000_000),
    ],
)
def test_sizes_accept_quantities_and_integers(written: object, expected: int) -> None:
    body = {**with_exporter(), "receivers": {"otlp": {"grpc": {"maxMessageSize": written}}}}
    assert rules.validate_spec(body).receivers.otlp.grpc.max_message_size == expected


@pytest.mark.parametrize(
    ("written", "expected"), [("200ms", 0.2), ("5s", 5.0), ("1.5m", 90.0), ("2m", 120.0)]
)
def test_durations_accept_units(written: object, expected: float) -> None:
    assert rules.validate_spec(with_exporter(timeout=written)).exporters[0].timeout == pytest.approx(expected)


@pytest.mark.parametrize(
    ("field", "path", "message"),
    [
        (
            {"receivers": {"otlp": {"grpc": {"maxMessageSize": "65Mi"}}}},
            "spec.receivers.otlp.grpc.maxMessageSize",
            "must be at most 64Mi",
        ),
        (
            {"receivers": {"otlp": {"http": {"maxBodySize": "1Gi"}}}},
            "spec.receivers.otlp.http.maxBodySize",
            None,
        ),
        (
            {"processors": {"batch": {"maxBytes": 64 * 1024 * 1024 + 1}}},
            "spec.processors.batch.maxBytes",
            None,
        ),
        (
            {"processors": {"batch": {"maxBytes": "1000"}}},
            "spec.processors.batch.maxBytes",
            "must be at least 1Ki",
        ),
        ({"processors": {"batch": {"timeout": "2m"}}}, "spec.processors.batch.timeout", "must be at most 1m"),
    ],
)
def test_sizes_and_durations_out_of_bounds_are_refused_in_the_units_users_write(
    field: dict[str, Any], path: str, message: str | None
) -> None:
    found = problems({**with_exporter(), **field})
    assert list(found) == [path]
    assert found[path] == (message or "must be at most 64Mi")


def test_the_hard_cap_itself_is_accepted() -> None:
    body = {**with_exporter(), "receivers": {"otlp": {"http": {"maxBodySize": "64Mi"}}}}
    assert rules.validate_spec(body).receivers.otlp.http.max_body_size == spec.MAX_MESSAGE_HARD_CAP


def test_unparseable_sizes_and_durations_say_what_to_write() -> None:
    body = {
        **with_exporter(timeout="ten seconds"),
        "processors": {"batch": {"maxBytes": "4MB"}},
    }
    found = problems(body)
    assert "is not a duration" in found["spec.exporters[0].timeout"]
    assert "1m30s" in found["spec.exporters[0].timeout"]
    assert "is not a byte size" in found["spec.processors.batch.maxBytes"]
    assert "16Mi" in found["spec.processors.batch.maxBytes"]


def test_k8s_attributes_is_spelled_k8sAttributes_in_yaml() -> None:
    parsed = rules.validate_spec(
        {"exporters": [{"name": "b", "debug": {}}], "processors": {"k8sAttributes": {"clusterName": "c"}}}
    )
    assert parsed.processors.k8s_attributes == spec.K8sAttributes(cluster_name="c")
    assert spec.dump(parsed)["processors"]["k8sAttributes"] == {"clusterName": "c"}


def test_a_bad_failover_endpoint_is_reported_at_its_index() -> None:
    body = {"exporters": [{"name": "b", "endpoint": "a:4317", "endpoints": ["bad/x/y", "c:4317"]}]}
    with pytest.raises(SpecError) as caught:
        rules.validate_spec(body)
    bad = [p.path for p in caught.value.problems if "is not a gRPC endpoint" in p.message]
    assert bad == ["spec.exporters[0].endpoints[0]"]


def test_a_field_error_does_not_hide_cross_field_problems_elsewhere() -> None:
    body = {
        "replicas": "two",
        "telemetry": {"port": 4317},
        "exporters": [{"name": "a", "endpoint": "collector:4317", "compression": "zstd"}],
    }
    with pytest.raises(SpecError) as caught:
        rules.validate_spec(body)
    assert {p.path for p in caught.value.problems} == {
        "spec.replicas",
        "spec.telemetry.port",
        "spec.exporters[0].compression",
    }


def test_a_duration_without_a_unit_is_refused_like_the_crd_refuses_it() -> None:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec({"exporters": [{"name": "b", "debug": {}, "timeout": 5}]})
    assert [str(p) for p in caught.value.problems] == [
        "spec.exporters[0].timeout: 5 has no unit: write it like 300ms, 5s, 1m30s or 1h"
    ]


def test_a_gateway_may_allow_other_namespaces_to_target_it_for_env_wiring() -> None:
    parsed = rules.validate_spec(
        {"mode": "deployment", "injection": {"allowed": {"namespaces": ["shop"]}}, "exporters": [HTTP]}
    )
    assert parsed.injection is not None and parsed.injection.allowed.namespaces == ["shop"]


def test_sidecar_container_settings_are_refused_for_a_node_agent() -> None:
    found = problems({"mode": "daemonset", "injection": {"rolloutOnChange": True}, "exporters": [HTTP]})
    assert found == {
        "spec.injection.rolloutOnChange": "only for mode sidecar (other modes inject no container)"
    }
