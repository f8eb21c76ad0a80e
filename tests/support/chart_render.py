"""Shared helpers for the chart tests: the chart loaded with the real Helm SDK, rendered to objects.

No tests live here. `render(values)` renders charts/otlp-operator exactly as `helm template` would (offline,
so `lookup` finds nothing) and returns the objects, each tagged with the template it came from.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import helm_python
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "otlp-operator"
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
CI_VALUES: dict[str, dict[str, Any]] = {
    path.name.removesuffix("-values.yaml"): yaml.safe_load(path.read_text()) or {} for path in CI_FILES
}
RELEASE = "otlp"
NAMESPACE = "otlp-system"
FULLNAME = "otlp-otlp-operator"
TEMPLATE_KEY = "__template__"
# Kinds of other projects' CRDs the chart may create; kubernetes-validate has no schema for them.
THIRD_PARTY_KINDS = {
    "Certificate",
    "Issuer",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "ClusterKopfPeering",
    "KopfPeering",
}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render_templates(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return chart().render(values=values or {}, name=RELEASE, namespace=namespace, is_install=True)


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every object the chart renders with `values`, in template order."""
    objects = []
    for template, text in sorted(render_templates(values, namespace).items()):
        if not template.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document[TEMPLATE_KEY] = template.rsplit("/", 1)[-1]
                objects.append(document)
    return objects


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the test's template tag."""
    return {key: value for key, value in obj.items() if key != TEMPLATE_KEY}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(objects, kind)
    return found


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def validating_webhook(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    return dict(hook)


def webhooks(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every webhook of every webhook configuration."""
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    return [hook for obj in objects if obj["kind"] in kinds for hook in obj["webhooks"]]
