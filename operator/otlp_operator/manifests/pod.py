"""The agent pod template shared by the Deployment and the DaemonSet.

It carries the config hash as an annotation (a new config rolls the pods), mounts the hash-named
ConfigMap and the Secrets the spec names (`secrets`; their content is never hashed: the agent reloads
rotated files itself), and runs without a service-account token (the agent never calls the Kubernetes
API) and without service-link environment variables. Pod-level security repeats the container's non-root
user and sets fsGroup so a persistent-queue volume is writable by the agent and Secret files are readable
by it. The grace period is the spec's drain time plus 5 s for the agent to stop its listeners and exit
after draining.
"""

from __future__ import annotations

import math
from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import agentconfig, container, secrets, storage

_EXIT_MARGIN_SECONDS = 5
_TMP_SIZE = "64Mi"


def template(pipeline: loader.OTLPPipeline, image: str) -> dict[str, Any]:
    """The pod template for `pipeline`."""
    rendered = agentconfig.render(pipeline)
    queue = storage.plan(pipeline)
    return {
        "metadata": {
            "labels": naming.labels(pipeline),
            "annotations": {
                naming.CONFIG_HASH_ANNOTATION: rendered.hash,
                "kubectl.kubernetes.io/default-container": naming.CONTAINER,
            },
        },
        "spec": _pod_spec(pipeline, image, rendered, queue),
    }


def _pod_spec(
    pipeline: loader.OTLPPipeline,
    image: str,
    rendered: agentconfig.RenderedConfig,
    queue: storage.QueueStorage,
) -> dict[str, Any]:
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
    pod["volumes"] = _volumes(pipeline, rendered, queue)
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


def _volumes(
    pipeline: loader.OTLPPipeline, rendered: agentconfig.RenderedConfig, queue: storage.QueueStorage
) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": container.CONFIG_VOLUME, "configMap": {"name": naming.config_map(pipeline, rendered.hash)}},
        {"name": container.TMP_VOLUME, "emptyDir": {"sizeLimit": _TMP_SIZE}},
    ]
    queue_source = _queue_source(pipeline, queue)
    if queue_source is not None:
        volumes.append({"name": storage.VOLUME, **queue_source})
    return volumes + secrets.volumes(pipeline)


def _queue_source(pipeline: loader.OTLPPipeline, queue: storage.QueueStorage) -> dict[str, Any] | None:
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
