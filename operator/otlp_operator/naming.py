"""Every name, label and endpoint the operator derives from a pipeline, in one place.

Kubernetes limits most names to a 63-character DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`), while an
OTLPPipeline's own name is a DNS subdomain (up to 253 characters, dots allowed). The rule here: a derived
name is used verbatim when it already fits; otherwise (too long, or the pipeline name has characters a
label refuses) the pipeline part is shortened and sanitized and an 8-hex-digit hash of the *original*
pipeline name is appended, so two long names with a common prefix never collide. Fixed suffixes (a kind
marker, the config hash) are always kept whole, so a truncated name still says what it is.

Names per kind (all in the pipeline's namespace):

| object | name |
|---|---|
| Deployment / DaemonSet, ServiceAccount, PodDisruptionBudget, HorizontalPodAutoscaler | `<name>-agent` |
| Service | `<name>-otlp` (a DNS-1035 label: `p-<name>-<hash>-otlp` if the name starts with a digit) |
| headless Service (gateways) | `<name>-otlp-headless` (same rule) |
| ConfigMap | `<name>-config-<template hash>` (the hash of the pod-level settings it is for) |
| PersistentVolumeClaim (persistent queue) | `<name>-queue` |

Labels: the recommended `app.kubernetes.io/*` set plus `telemetry.otlp-operator.io/pipeline`:
`name` otlp-agent, `instance` the pipeline, `component` what the agents are (`gateway`, `node-agent`,
`sidecar`: `component`), `version` the agent image's tag (`version_label`, stamped by `manifests.build_all`,
which knows the image), `managed-by` and `part-of` otlp-operator. The selector is the subset that never
changes across spec changes (name, instance, pipeline): a Deployment's selector is immutable, and the mode
(`component`) and the image (`version`) may change.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple

from otlp_agent.api import loader, spec

MAX_LABEL = 63
_HASH_LEN = 8
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

PREFIX = f"{spec.API_GROUP}/"
CONFIG_HASH_ANNOTATION = f"{PREFIX}config-hash"
PIPELINE_LABEL = f"{PREFIX}pipeline"
APP_NAME = "otlp-agent"
CONTAINER = "otlp-agent"
VERSION_LABEL = "app.kubernetes.io/version"
COMPONENT_LABEL = "app.kubernetes.io/component"
#: What the agents of each mode are, as `app.kubernetes.io/component` (a mode not listed: its own name).
COMPONENTS = {"deployment": "gateway", "daemonset": "node-agent", "sidecar": "sidecar"}


class PipelineKey(NamedTuple):
    """Which pipeline: its namespace and name (how every index and lock of the operator keys pipelines)."""

    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> PipelineKey:
        """The key of a pipeline object (or of the loaded pipeline's metadata)."""
        metadata = obj.get("metadata") or {}
        return cls(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def short_hash(text: str, length: int = _HASH_LEN) -> str:
    """The first `length` hex digits of the SHA-256 of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_dns_label(name: str) -> bool:
    """True for a valid RFC 1123 DNS label (what most object names must be)."""
    return len(name) <= MAX_LABEL and bool(_LABEL_RE.match(name))


def is_label_value(value: str) -> bool:
    """True for a valid Kubernetes label value."""
    return len(value) <= MAX_LABEL and bool(_LABEL_VALUE_RE.match(value))


def dns_label(base: str, suffix: str = "", prefix: str = "") -> str:
    """`prefix + base + suffix` as a DNS label.

    Verbatim when there is no prefix and it is valid; otherwise `base` is sanitized, shortened and
    followed by a hash of itself, so the result never equals another base's verbatim or hashed name.
    """
    if not prefix and is_dns_label(base + suffix):
        return base + suffix
    room = MAX_LABEL - len(prefix) - len(suffix) - _HASH_LEN - 1
    # Non-label characters (dots, capitals, underscores) become dashes; runs collapse; ends are trimmed.
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", base.lower()))[:room].strip("-")
    head = f"{cleaned}-" if cleaned else ""
    return f"{prefix}{head}{short_hash(base)}{suffix}"


def label_value(value: str) -> str:
    """`value` as a label value: verbatim when valid, else shortened with a hash of the original."""
    if is_label_value(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[: MAX_LABEL - _HASH_LEN - 1].strip("-_.")
    return f"{cleaned}-{short_hash(value)}" if cleaned else short_hash(value)


def workload(pipeline: loader.OTLPPipeline) -> str:
    """Name of the Deployment or DaemonSet (and its ServiceAccount, PDB and HPA)."""
    return dns_label(pipeline.name, "-agent")


def service_account(pipeline: loader.OTLPPipeline) -> str:
    """Name of the agent pods' ServiceAccount."""
    return workload(pipeline)


def pod_disruption_budget(pipeline: loader.OTLPPipeline) -> str:
    """Name of a gateway's PodDisruptionBudget."""
    return workload(pipeline)


def autoscaler(pipeline: loader.OTLPPipeline) -> str:
    """Name of a gateway's HorizontalPodAutoscaler."""
    return workload(pipeline)


def service(pipeline: loader.OTLPPipeline) -> str:
    """Name of the Service; Services need a DNS-1035 label, which must start with a letter."""
    prefix = "" if pipeline.name[:1].isalpha() else "p-"
    return dns_label(pipeline.name, "-otlp", prefix)


def headless_service(pipeline: loader.OTLPPipeline) -> str:
    """Name of a gateway's headless Service (DNS-1035, like `service`)."""
    prefix = "" if pipeline.name[:1].isalpha() else "p-"
    return dns_label(pipeline.name, "-otlp-headless", prefix)


def config_map(pipeline: loader.OTLPPipeline, template_hash: str) -> str:
    """Name of the ConfigMap the agent pods of one pod template mount (see `manifests.configmap`)."""
    return dns_label(pipeline.name, f"-config-{template_hash}")


def queue_claim(pipeline: loader.OTLPPipeline) -> str:
    """Name of the PersistentVolumeClaim of a single-replica gateway's persistent queue."""
    return dns_label(pipeline.name, "-queue")


def selector_labels(pipeline: loader.OTLPPipeline) -> dict[str, str]:
    """Labels that select the agent pods; they never change for the life of the pipeline."""
    instance = label_value(pipeline.name)
    return {
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/name": APP_NAME,
        PIPELINE_LABEL: instance,
    }


def component(pipeline: loader.OTLPPipeline) -> str:
    """`app.kubernetes.io/component` of the pipeline's objects: gateway, node-agent or sidecar."""
    mode = pipeline.spec.mode.value
    return COMPONENTS.get(mode, mode)


def version_label(image: str) -> str:
    """`app.kubernetes.io/version` for an agent image: its tag ("1.2.3"), else the start of its digest
    ("sha256-0123456789ab"), else "latest" (what a registry serves for an untagged name)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return label_value(last.rsplit(":", 1)[1])
    if digest:
        return label_value(digest.replace(":", "-")[:19])
    return "latest"


def labels(pipeline: loader.OTLPPipeline) -> dict[str, str]:
    """Labels of every child object and of the agent pods (`version` is added by the builders)."""
    found = {
        **selector_labels(pipeline),
        COMPONENT_LABEL: component(pipeline),
        "app.kubernetes.io/managed-by": "otlp-operator",
        "app.kubernetes.io/part-of": "otlp-operator",
    }
    return dict(sorted(found.items()))


def endpoints(pipeline: loader.OTLPPipeline, headless: bool = False) -> dict[str, str | None]:
    """In-cluster OTLP endpoints of the pipeline's Service, or with `headless` of its headless Service
    (None when disabled, or for sidecars).

    Sidecar pipelines have no Service: each injected pod talks to its own agent on localhost.
    """
    otlp = pipeline.spec.receivers.otlp
    if pipeline.spec.mode == spec.Mode.sidecar:
        return {"grpc": None, "http": None}
    host = f"{headless_service(pipeline) if headless else service(pipeline)}.{pipeline.namespace}.svc"
    scheme = "https" if otlp.http.tls is not None else "http"
    return {
        "grpc": f"{host}:{otlp.grpc.port}" if otlp.grpc.enabled else None,
        "http": f"{scheme}://{host}:{otlp.http.port}" if otlp.http.enabled else None,
    }
