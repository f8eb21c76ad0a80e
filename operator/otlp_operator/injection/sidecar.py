"""The injected agent container and its volumes.

The container is the one gateways run (`manifests.container.build`: image, args, ports, probes, the
restricted securityContext, the Secret mounts), with the resources of `spec.injection.resources` and
volumes renamed with an `otlp-agent-` prefix so they cannot collide with the application's own. The
config is the pipeline's ConfigMap (`manifests.configmap`: named after the sidecar's pod-level settings,
its data rewritten in place when only the pipeline config changes, which the agent then reloads without
the application's pod restarting): published by the pipeline's reconcile in its namespace, and copied
into every other namespace it allows (`configcopy`), since a pod mounts ConfigMaps of its own.

The Secrets the spec names (`manifests.secrets`) are mounted into the agent container only — the app
containers never see them — from the *pod's* namespace: a pod can mount only Secrets of its own
namespace, and the operator never reads or copies Secrets, so each namespace that runs injected pods
must hold them. A missing Secret (or key) keeps the pod in ContainerCreating, with a kubelet Event
naming it. The files are world-readable (0444) inside the agent's mount because the application's pod
decides fsGroup, so group access cannot be relied on.

As a native sidecar (an init container with `restartPolicy: Always`, Kubernetes >= 1.29) it starts
before the app containers and stops after them, and a Job's pod completes when its app containers do. A
startup probe on /readyz makes the kubelet wait for the agent's listeners before it starts the next
container, so an app's first spans find it ready. Older clusters get a regular container instead.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator.manifests import container, secrets

PREFIX = "otlp-agent-"
CONFIG_VOLUME = f"{PREFIX}{container.CONFIG_VOLUME}"
TMP_VOLUME = f"{PREFIX}{container.TMP_VOLUME}"
TMP_SIZE = "64Mi"
_SECRET_VOLUME_PREFIX = f"{PREFIX}{secrets.VOLUME_PREFIX}"
NATIVE_SIDECARS_SINCE = (1, 29)


def native(cluster_version: tuple[int, int]) -> bool:
    """True when the cluster runs native sidecars (the SidecarContainers feature is on by default)."""
    return cluster_version >= NATIVE_SIDECARS_SINCE


def build(pipeline: loader.OTLPPipeline, image: str, *, native_sidecar: bool) -> dict[str, Any]:
    """The agent container for an application pod."""
    injection = pipeline.spec.injection or spec.Injection()
    agent = container.build(pipeline, image, resources=injection.resources)
    renamed = {container.CONFIG_VOLUME: CONFIG_VOLUME, container.TMP_VOLUME: TMP_VOLUME}
    renamed |= {
        secrets.volume_name(ref.name): secrets.volume_name(ref.name, PREFIX)
        for ref in secrets.referenced(pipeline)
    }
    agent["volumeMounts"] = [{**m, "name": renamed.get(m["name"], m["name"])} for m in agent["volumeMounts"]]
    if native_sidecar:
        agent["restartPolicy"] = "Always"
        agent["startupProbe"] = {
            "httpGet": {"path": "/readyz", "port": container.METRICS_PORT, "scheme": "HTTP"},
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 60,
        }
    return agent


def volumes(pipeline: loader.OTLPPipeline, config_map: str) -> list[dict[str, Any]]:
    """The agent's volumes: its config (the ConfigMap `config_map`), a small /tmp, and its Secrets."""
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": config_map}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
        *secrets.volumes(pipeline, prefix=PREFIX, mode=secrets.SIDECAR_MODE),
    ]


def volume_names(pipeline: loader.OTLPPipeline) -> list[str]:
    """Names of the volumes `volumes` adds for `pipeline` (the same for every config hash)."""
    return [
        CONFIG_VOLUME,
        TMP_VOLUME,
        *(secrets.volume_name(r.name, PREFIX) for r in secrets.referenced(pipeline)),
    ]


def owns_volume(name: str) -> bool:
    """True for a volume an injection added (of any pipeline or config: `remove` needs no pipeline)."""
    return name in (CONFIG_VOLUME, TMP_VOLUME) or name.startswith(_SECRET_VOLUME_PREFIX)


def ports(pipeline: loader.OTLPPipeline) -> set[int]:
    """Ports the agent listens on in the pod's network namespace."""
    return {int(port["containerPort"]) for port in container.ports(pipeline)}
