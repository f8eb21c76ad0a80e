"""The memory-fit check: the agent container's memory limit against `memoryLimiter.limit` + 256Mi, as the
webhook warns about it and the `MemoryFits` condition reports it; no example draws the warning."""

from __future__ import annotations

import pathlib
from typing import Any

import kopf
import pytest
import yaml
from otlp_agent.api import loader, memory_fit
from otlp_operator.edge import pipeline_webhook

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def document(mode: str = "deployment", limiter: str | None = None, **spec: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "p", "namespace": "obs"},
        "spec": {
            "mode": mode,
            "exporters": [{"name": "out", "endpoint": "https://otlp.example.com"}],
            **spec,
        },
    }
    if limiter is not None:
        found["spec"]["processors"] = {"memoryLimiter": {"limit": limiter, "spikeLimit": "8Mi"}}
    return found


def pipeline(mode: str = "deployment", limiter: str | None = None, **spec: Any) -> loader.OTLPPipeline:
    return loader.load_document(document(mode, limiter, **spec))


def limited(memory: str) -> dict[str, Any]:
    return {"limits": {"memory": memory}}


@pytest.mark.parametrize(
    ("container", "limiter", "fits"),
    [
        ("1Gi", "768Mi", True),  # exactly limit + 256Mi
        ("1Gi", "769Mi", False),
        ("1.5Gi", "1280Mi", True),
        ("1.5Gi", "1281Mi", False),
        ("536870912", "256Mi", True),  # 512Mi in plain bytes
        ("536870911", "256Mi", False),
        ("500M", "256Mi", False),  # 500,000,000 bytes < 536,870,912
        ("768435456", "500M", True),  # 500,000,000 + 268,435,456
        ("768435455", "500M", False),
        ("800M", "500Mi", True),  # 800,000,000 >= 524,288,000 + 268,435,456
        ("790M", "500Mi", False),
        ("1G", "700M", True),  # 1,000,000,000 >= 968,435,456
        ("2e9", "1Gi", True),
    ],
)
def test_quantities_are_compared_in_bytes(container: str, limiter: str, fits: bool) -> None:
    fit = memory_fit.check(pipeline(limiter=limiter, resources=limited(container)))
    assert fit.fits is fits
    assert fit.reason == (memory_fit.FITS if fits else memory_fit.TOO_LOW)
    assert memory_fit.warnings(pipeline(limiter=limiter, resources=limited(container))) == (
        [] if fits else [fit.message]
    )


def test_the_warning_names_the_fields_their_values_and_what_is_needed() -> None:
    node_agent = pipeline("daemonset", limiter="192Mi", resources=limited("384Mi"))
    assert memory_fit.warnings(node_agent) == [
        "spec.resources.limits.memory (384Mi) is below spec.processors.memoryLimiter.limit (192Mi) + 256Mi "
        "of agent overhead (448Mi): the container can be OOM-killed before the limiter refuses data "
        "(see docs/agent.md#memory)"
    ]


def test_decimal_sizes_are_shown_in_decimal_or_in_bytes() -> None:
    (warning,) = memory_fit.warnings(pipeline(limiter="500M", resources=limited("700M")))
    assert "spec.resources.limits.memory (700M) is below" in warning
    assert "memoryLimiter.limit (500M) + 256Mi of agent overhead (768435456)" in warning


@pytest.mark.parametrize("resources", [{"limits": {}}, {"limits": {"cpu": "1"}}])
def test_a_container_without_a_memory_limit_draws_no_warning(resources: dict[str, Any]) -> None:
    fit = memory_fit.check(pipeline(limiter="2Gi", resources=resources))
    assert (fit.fits, fit.reason, memory_fit.warnings(pipeline(limiter="2Gi", resources=resources))) == (
        True,
        memory_fit.NO_LIMIT,
        [],
    )
    assert fit.message == "spec.resources.limits.memory is not set: the container's memory is not limited"


def test_the_defaults_fit_in_every_mode() -> None:
    for mode in ("deployment", "statefulset", "daemonset", "sidecar"):
        fit = memory_fit.check(pipeline(mode))
        assert (fit.limit, fit.limiter, fit.fits) == ("512Mi", 256 * 2**20, True), mode
        assert fit.message.endswith("leaves at least 256Mi above spec.processors.memoryLimiter.limit (256Mi)")


def test_a_sidecar_is_checked_against_its_injection_resources_not_spec_resources() -> None:
    defaulted = memory_fit.check(pipeline("sidecar", limiter="512Mi", resources=limited("4Gi")))
    assert (defaulted.field, defaulted.limit, defaulted.fits) == (
        "spec.injection.resources.limits.memory",
        "512Mi",
        False,
    )
    assert defaulted.message.startswith(
        "spec.injection.resources.limits.memory (512Mi) is below spec.processors.memoryLimiter.limit (512Mi)"
    )
    raised = pipeline("sidecar", limiter="512Mi", injection={"resources": limited("768Mi")})
    assert memory_fit.warnings(raised) == []
    small = pipeline("sidecar", limiter="64Mi", injection={"resources": limited("256Mi")})
    assert (
        "(256Mi) is below spec.processors.memoryLimiter.limit (64Mi) + 256Mi of agent overhead (320Mi)"
        in (memory_fit.check(small).message)
    )


def example_pipelines() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for loaded in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if loaded and loaded.get("kind") == "OTLPPipeline":
                found.append((f"{path.name}:{loaded['metadata']['name']}", loaded))
    return found


EXAMPLE_PIPELINES = example_pipelines()


@pytest.mark.parametrize(("name", "example"), EXAMPLE_PIPELINES, ids=[n for n, _ in EXAMPLE_PIPELINES])
def test_no_example_draws_the_warning(name: str, example: dict[str, Any]) -> None:
    assert memory_fit.warnings(loader.load_document(example)) == [], name


def validate_handler() -> Any:
    registry = kopf.OperatorRegistry()
    pipeline_webhook.register(registry)
    (handler,) = registry._webhooks.get_all_handlers()
    return handler.fn


def test_the_webhook_admits_with_a_warning_and_denies_only_invalid_pipelines() -> None:
    body = document("daemonset", "192Mi", resources=limited("384Mi"))
    warnings: list[str] = []
    validate_handler()(body=kopf.Body(body), warnings=warnings)  # admitted: no AdmissionError
    assert warnings == memory_fit.warnings(loader.load_document(body)) and len(warnings) == 1
    body["spec"]["processors"]["memoryLimiter"]["limit"] = "0"
    warnings.clear()
    with pytest.raises(kopf.AdmissionError) as denied:
        validate_handler()(body=kopf.Body(body), warnings=warnings)
    assert "spec.processors.memoryLimiter.limit" in str(denied.value) and warnings == []
