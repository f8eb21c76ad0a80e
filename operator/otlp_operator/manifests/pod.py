"""The agent pod template shared by the Deployment, the StatefulSet and the DaemonSet.

It mounts the agent's ConfigMap and the Secrets the spec names (`secrets`; their content is never hashed:
the agent reloads rotated files itself), and runs without a service-account token (the agent never calls
the Kubernetes API) and without service-link environment variables.

Hot config: the template holds nothing of the agent config but the ConfigMap's name, and that name ends
with the hash of the rest of the template (`template_hash`): ports, image, resources, env, volumes,
Secrets mounted, probes, grace period, scheduling. So a change that only touches the pipeline config
(exporters, routes, batching, processors, ...) changes the ConfigMap's data, not the template: the pods
stay and their agents reload the file. A pod-level change makes a new template, hence a new ConfigMap
name: the workload rolls its pods and each new pod mounts a config made for it, while the old pods keep
theirs (a pod never sees a config that needs a port it does not declare or a Secret it does not mount).

Pod-level security repeats the container's non-root user and sets fsGroup so a persistent-queue volume
is writable by the agent and Secret files are readable by it. The grace period is the spec's drain time
plus 5 s for the agent to stop its listeners and exit after draining.
"""

from __future__ import annotations

import json
import math
from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import agentconfig, container, secrets, storage

_EXIT_MARGIN_SECONDS = 5
_TMP_SIZE = "64Mi"


def template(pipeline: loader.OTLPPipeline, image: str) -> dict[str, Any]:
    """The pod template for `pipeline`, mounting the ConfigMap named after the template's hash."""
    body = _unnamed(pipeline, image)
    _config_source(body)["name"] = naming.config_map(pipeline, _hash(body))
    return body


def template_hash(pipeline: loader.OTLPPipeline, image: str) -> str:
    """The hash of everything pod-level about `pipeline`'s agents (what the ConfigMap's name ends with)."""
    return _hash(_unnamed(pipeline, image))


def _unnamed(pipeline: loader.OTLPPipeline, image: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": naming.labels(pipeline),
            "annotations": {"kubectl.kubernetes.io/default-container": naming.CONTAINER},
        },
        "spec": _pod_spec(pipeline, image, storage.plan(pipeline)),
    }


def _hash(body: dict[str, Any]) -> str:
    return naming.short_hash(json.dumps(body, sort_keys=True, separators=(",", ":")), agentconfig.HASH_LENGTH)


def _config_source(body: dict[str, Any]) -> dict[str, Any]:
    volume = next(v for v in body["spec"]["volumes"] if v["name"] == container.CONFIG_VOLUME)
    source: dict[str, Any] = volume["configMap"]
    return source


def _pod_spec(pipeline: loader.OTLPPipeline, image: str, queue: storage.QueueStorage) -> dict[str, Any]:
    s = pipeline.spec
    pod: dict[str, Any] = {
        "serviceAccountName": naming.service_account(pipeline),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(),
        "terminationGracePeriodSeconds": math.ceil(s.lifecycle.shutdown_grace_period) + _EXIT_MARGIN_SECONDS,
    }
    if queue.backing == storage.Backing.host_path:
        pod["initContainers"] = [_queue_dir_owner(pipeline, image)]
    pod["containers"] = [container.build(pipeline, image, queue=queue)]
    pod["volumes"] = _volumes(pipeline, queue)
    if s.node_selector:
        pod["nodeSelector"] = dict(s.node_selector)
    if s.tolerations:
        pod["tolerations"] = [t.model_dump(exclude_none=True) for t in s.tolerations]
    if s.priority_class_name:
        pod["priorityClassName"] = s.priority_class_name
    return pod


def _pod_security_context() -> dict[str, Any]:
    return {
        "fsGroup": container.RUN_AS_USER,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": container.RUN_AS_USER,
        "runAsNonRoot": True,
        "runAsUser": container.RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volumes(pipeline: loader.OTLPPipeline, queue: storage.QueueStorage) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": container.CONFIG_VOLUME, "configMap": {"name": ""}},  # named by `template`
        {"name": container.TMP_VOLUME, "emptyDir": {"sizeLimit": _TMP_SIZE}},
    ]
    queue_source = _queue_source(pipeline, queue)
    if queue_source is not None:
        volumes.append({"name": storage.VOLUME, **queue_source})
    return volumes + secrets.volumes(pipeline)


def _queue_source(pipeline: loader.OTLPPipeline, queue: storage.QueueStorage) -> dict[str, Any] | None:
    """The queue volume's source; none for a StatefulSet, whose claim template provides the volume."""
    if queue.backing == storage.Backing.claim:
        return {"persistentVolumeClaim": {"claimName": naming.queue_claim(pipeline)}}
    if queue.backing == storage.Backing.empty_dir:
        return {"emptyDir": {"sizeLimit": queue.size}}
    if queue.backing == storage.Backing.host_path:
        return {"hostPath": {"path": storage.host_path(pipeline), "type": "DirectoryOrCreate"}}
    return None


def _queue_dir_owner(pipeline: loader.OTLPPipeline, image: str) -> dict[str, Any]:
    """Init container giving the node's queue directory to the agent user: root, but only CAP_CHOWN."""
    # Only chown: after it root no longer owns the directory and, without CAP_FOWNER, could not chmod it.
    chown = "import os, sys; os.chown(sys.argv[1], int(sys.argv[2]), int(sys.argv[2]))"
    security = container.security_context()
    security.update(
        capabilities={"add": ["CHOWN"], "drop": ["ALL"]}, runAsNonRoot=False, runAsUser=0, runAsGroup=0
    )
    return {
        "name": "queue-dir-owner",
        "image": pipeline.spec.image or image,
        "command": ["python3", "-c", chown, storage.QUEUE_DIR, str(container.RUN_AS_USER)],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": security,
        "volumeMounts": [{"name": storage.VOLUME, "mountPath": storage.QUEUE_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
