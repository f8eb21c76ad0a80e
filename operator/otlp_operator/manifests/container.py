"""The agent container: image, args, ports, probes, env, resources and a locked-down securityContext.

Shared by the Deployment and DaemonSet builders, and meant for the sidecar injector too (it passes the
injection resources). The container runs as user 10001 with a read-only root filesystem, no privilege
escalation, every capability dropped and the runtime's default seccomp profile; the only writable paths
are `/tmp` (an emptyDir) and the queue directory when a queue is persistent. The Secrets the spec names
are mounted read-only (`secrets`). Ports come from the spec's enabled receivers, never guessed, and both
probes use the metrics port.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import agentconfig, secrets, storage

CONFIG_DIR = "/etc/otlp-agent"
CONFIG_VOLUME = "config"
TMP_VOLUME = "tmp"
RUN_AS_USER = 10001
GRPC_PORT = "otlp-grpc"
HTTP_PORT = "otlp-http"
METRICS_PORT = "metrics"

# Identity of the pod, for resource attributes and logs: (variable, downward API field).
_DOWNWARD_ENV = (
    ("OTLP_AGENT_POD_NAME", "metadata.name"),
    ("OTLP_AGENT_POD_NAMESPACE", "metadata.namespace"),
    ("OTLP_AGENT_POD_UID", "metadata.uid"),
    ("OTLP_AGENT_NODE_NAME", "spec.nodeName"),
)


def build(
    pipeline: loader.OTLPPipeline,
    image: str,
    *,
    resources: spec.Resources | None = None,
    queue: storage.QueueStorage | None = None,
) -> dict[str, Any]:
    """The agent container for `pipeline`; `resources` defaults to the spec's."""
    queue = queue or storage.plan(pipeline)
    return {
        "name": naming.CONTAINER,
        "image": pipeline.spec.image or image,
        "args": ["run", "--config", f"{CONFIG_DIR}/{agentconfig.FILE_NAME}"],
        "ports": ports(pipeline),
        "env": _env(pipeline, queue),
        "resources": resource_requirements(resources or pipeline.spec.resources),
        "volumeMounts": _mounts(pipeline, queue),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "securityContext": security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def ports(pipeline: loader.OTLPPipeline) -> list[dict[str, Any]]:
    """Container ports: each enabled OTLP receiver, then metrics."""
    otlp = pipeline.spec.receivers.otlp
    found = []
    if otlp.grpc.enabled:
        found.append({"name": GRPC_PORT, "containerPort": otlp.grpc.port, "protocol": "TCP"})
    if otlp.http.enabled:
        found.append({"name": HTTP_PORT, "containerPort": otlp.http.port, "protocol": "TCP"})
    found.append({"name": METRICS_PORT, "containerPort": pipeline.spec.telemetry.port, "protocol": "TCP"})
    return found


def resource_requirements(resources: spec.Resources) -> dict[str, Any]:
    """Kubernetes ResourceRequirements from the spec's (unset quantities left out)."""
    result: dict[str, Any] = {}
    for key, quantities in (("requests", resources.requests), ("limits", resources.limits)):
        values = quantities.model_dump(exclude_none=True)
        if values:
            result[key] = values
    return result


def security_context() -> dict[str, Any]:
    """The restrictive container securityContext (Pod Security Standard "restricted")."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": RUN_AS_USER,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(pipeline: loader.OTLPPipeline, queue: storage.QueueStorage) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for name, path in _DOWNWARD_ENV
    ]
    if queue.backing != storage.Backing.none:
        env.append({"name": storage.QUEUE_DIR_ENV, "value": storage.QUEUE_DIR})
    env += secrets.env(pipeline)
    # A spec variable with a reserved name replaces ours: duplicate names would break server-side apply.
    user = {var.name: user_env(var) for var in pipeline.spec.env}
    return [user.pop(entry["name"], entry) for entry in env] + list(user.values())


def user_env(var: spec.EnvVar) -> dict[str, Any]:
    """A `spec.env` variable as a container's env entry: its value, or where the kubelet takes it from."""
    if var.value_from is None:
        return {"name": var.name, "value": var.value}
    return {"name": var.name, "valueFrom": spec.dump(var.value_from)}


def _mounts(pipeline: loader.OTLPPipeline, queue: storage.QueueStorage) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    if queue.backing != storage.Backing.none:
        mounts.append({"name": storage.VOLUME, "mountPath": storage.QUEUE_DIR})
    return mounts + secrets.mounts(pipeline)


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": METRICS_PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }
