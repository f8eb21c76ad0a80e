"""The names an injected pod carries, and reading them back.

A pod asks for an agent with the annotation `telemetry.otlp-operator.io/inject` (on the pod or on its
namespace). An injected pod carries:

- the label `telemetry.otlp-operator.io/injected: <pipeline name as a label value>`, so the pods of a
  pipeline can be listed with a label selector (stale-sidecar rollouts);
- the annotation `telemetry.otlp-operator.io/injected-pipeline: <namespace>/<name>` (exact, unlike a
  label value, which is limited to 63 characters and cannot hold a `/`);
- the annotation `telemetry.otlp-operator.io/agent-config: <ConfigMap>` for a sidecar: the pipeline's
  ConfigMap it mounts, whose name ends with the hash of the sidecar's pod-level settings (a pipeline-config
  change rewrites that ConfigMap, which the sidecar reloads; a pod-level change publishes another one, and
  the pod is then stale: see `reconcile.sidecar_restarts`); absent for env-only wiring;
- the annotation `telemetry.otlp-operator.io/injection-record`: JSON naming, per container, the
  variables injection added and the resource attribute keys it appended (and whether it chose the
  default container), so `remove` undoes exactly that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_operator import naming

INJECT_ANNOTATION = f"{naming.PREFIX}inject"
INJECTED_LABEL = f"{naming.PREFIX}injected"
PIPELINE_ANNOTATION = f"{naming.PREFIX}injected-pipeline"
CONFIG_MAP_ANNOTATION = f"{naming.PREFIX}agent-config"
RECORD_ANNOTATION = f"{naming.PREFIX}injection-record"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


@dataclasses.dataclass(frozen=True)
class Marker:
    """What an injected pod says about its injection."""

    namespace: str
    name: str
    config_map: str | None  # the ConfigMap a sidecar mounts (None: env wiring only)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def read(pod: dict[str, Any]) -> Marker | None:
    """The injection marker of `pod`, or None when it was never injected."""
    found = annotations_of(pod).get(PIPELINE_ANNOTATION)
    if not found or "/" not in found:
        return None
    namespace, name = found.split("/", 1)
    return Marker(namespace, name, annotations_of(pod).get(CONFIG_MAP_ANNOTATION))


def selector(name: str) -> str:
    """Label selector of the pods injected from pipelines called `name` (in any namespace: callers check
    `read(pod).namespace` too)."""
    return f"{INJECTED_LABEL}={naming.label_value(name)}"
