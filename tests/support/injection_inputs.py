"""Shared inputs for the injection unit tests (no tests live here): pipelines and pods."""

from __future__ import annotations

import copy
from typing import Any

from otlp_agent.api import loader, spec
from otlp_operator.injection import resolve

IMAGE = "registry.test/otlp-agent:1.2.3"
NEW = (1, 30)
OLD = (1, 28)
HASH = "0123456789"
CONFIG_MAP = "agent-config-0123456789"  # what reconcile publishes for pipeline "agent"
EXPORTER = {"name": "backend", "endpoint": "gateway-otlp.observability.svc:4317", "tls": {"insecure": True}}


def pipeline(name: str = "agent", namespace: str = "shop", **fields: Any) -> loader.OTLPPipeline:
    document = {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"mode": "sidecar", "exporters": [EXPORTER], **fields},
    }
    return loader.load_document(document)


def body(name: str = "agent", namespace: str = "shop", **fields: Any) -> dict[str, Any]:
    """A pipeline object as the API server stores it, its config published (status.configRollout)."""
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"mode": "sidecar", "exporters": [EXPORTER], **fields},
        "status": {"configHash": HASH, "configRollout": {"hash": HASH, "configMap": f"{name}-config-{HASH}"}},
    }


def target(name: str = "agent", namespace: str = "shop", **fields: Any) -> resolve.Target:
    return resolve.target_of(body(name, namespace, **fields))


def deployment_pod(namespace: str = "shop", **annotations: str) -> dict[str, Any]:
    """A pod as a Deployment's ReplicaSet creates it: generateName, no uid yet, owned by the ReplicaSet."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d4b9c8f5-",
            "namespace": namespace,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d4b9c8f5",
                    "uid": "rs-uid",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "initContainers": [{"name": "migrate", "image": "web:1"}],
            "containers": [
                {"name": "web", "image": "web:1", "ports": [{"containerPort": 8080}]},
                {"name": "worker", "image": "worker:1", "env": [{"name": "MODE", "value": "jobs"}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    if annotations:
        pod["metadata"]["annotations"] = dict(annotations)
    return pod


def bare_pod(name: str = "debug", **spec_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec_fields},
    }


def env_of(pod: dict[str, Any], container: str) -> dict[str, Any]:
    """A container's env as name -> value (or the valueFrom dict)."""
    (found,) = [c for c in pod["spec"]["containers"] if c["name"] == container]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in found.get("env") or []}


def attributes_of(pod: dict[str, Any], container: str) -> dict[str, str]:
    value = env_of(pod, container)["OTEL_RESOURCE_ATTRIBUTES"]
    return dict(part.split("=", 1) for part in value.split(","))


def with_env(pod: dict[str, Any], container: str, *entries: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    for c in pod["spec"]["containers"]:
        if c["name"] == container:
            c["env"] = [*(c.get("env") or []), *entries]
    return pod
