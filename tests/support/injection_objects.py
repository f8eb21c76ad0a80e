"""What the injection end-to-end tests create and wait for: sidecar (or other mode) pipelines, pods that
ask for an agent with the inject annotation, created with the real kubectl so they pass the API server's
admission chain, and the wait until a pipeline's config is published.

* `pipeline(name, mode="sidecar", **spec_fields)` — an OTLPPipeline in the harness's namespace.
* `pod(name, inject=None, namespace=..., **metadata)` — a one-container pod; `inject` is its annotation.
* `create(cluster, obj)` — `kubectl create` (its stderr holds the warnings kubectl prints).
* `published(cluster, name)` — waits for the pipeline's published ConfigMap and returns its name.
"""

from __future__ import annotations

from typing import Any

import yaml
from otlp_agent.api import spec

from tests.support.operator_harness import NAMESPACE, Cluster

INJECT = "telemetry.otlp-operator.io/inject"


def pipeline(name: str, mode: str = "sidecar", **fields: Any) -> dict[str, Any]:
    exporter = {
        "name": "backend",
        "endpoint": "gateway-otlp.observability.svc:4317",
        "tls": {"insecure": True},
    }
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"mode": mode, "exporters": [exporter], **fields},
    }


def pod(name: str, inject: str | None = None, namespace: str = NAMESPACE, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if inject is not None:
        metadata["annotations"] = {INJECT: inject}
    metadata.update(extra)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "registry.test/app:1"}]},
    }


def create(cluster: Cluster, obj: dict[str, Any]) -> Any:
    return cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(obj))


def published(cluster: Cluster, name: str) -> str:
    """Wait until the pipeline's config is published; returns the ConfigMap holding it."""
    found = cluster.wait_for(
        lambda: (cluster.status(name).get("configRollout") or {}).get("configMap"), what=f"{name} published"
    )
    cluster.wait_for(lambda: cluster.get("configmaps", found), what=f"{name} ConfigMap")
    return str(found)
