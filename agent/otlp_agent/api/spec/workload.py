"""How the agent runs in the cluster: mode, resources, env, scheduling, autoscaling, sidecar injection, its
own telemetry port and shutdown behaviour."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import pydantic
from pydantic import Field

from otlp_agent.api import units
from otlp_agent.api.spec.common import PRESENCE_MATTERS, DnsLabel, Duration, Port, SpecModel

#: A Kubernetes quantity ("100m", "256Mi", "1.5Gi"), kept as written for the container's resources.
Quantity = Annotated[str, Field(pattern=units.QUANTITY_PATTERN, max_length=64)]


class Mode(StrEnum):
    deployment = "deployment"
    statefulset = "statefulset"
    daemonset = "daemonset"
    sidecar = "sidecar"


#: The gateway modes: a Service in front of replicas that receive from anywhere.
GATEWAY_MODES = (Mode.deployment, Mode.statefulset)


class ResourceList(SpecModel):
    """CPU and memory quantities, as in a Kubernetes container."""

    cpu: Quantity | None = Field(default=None, description='CPU quantity, e.g. "200m" or "1.5".')
    memory: Quantity | None = Field(default=None, description='Memory quantity, e.g. "256Mi" or "1.5Gi".')


class Resources(SpecModel):
    """Compute resources of the agent container."""

    requests: ResourceList = Field(
        default=ResourceList(cpu="100m", memory="128Mi"), description="Guaranteed resources."
    )
    limits: ResourceList = Field(default=ResourceList(memory="512Mi"), description="Upper bounds.")


_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_KEY = r"^[-._a-zA-Z0-9]+$"
# What the downward API offers to environment variables (Kubernetes refuses other paths).
_FIELD_PATHS = (
    r"^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])"
    r"|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$"
)


class KeySelector(SpecModel):
    """A key of a Secret or ConfigMap in the pod's namespace."""

    name: str = Field(pattern=_SUBDOMAIN, max_length=253, description="Name of the Secret or ConfigMap.")
    key: str = Field(pattern=_KEY, max_length=253, description="The key whose value the variable takes.")
    optional: bool | None = Field(
        default=None, description="Start the container even when the object or key is missing."
    )


class FieldSelector(SpecModel):
    """A field of the agent's pod, through the downward API."""

    field_path: str = Field(
        pattern=_FIELD_PATHS,
        description="metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], "
        "metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP(s), "
        "status.podIP(s).",
    )
    api_version: str = Field(default="v1", pattern=r"^v1$", description="Version of the field path's schema.")


class ResourceFieldSelector(SpecModel):
    """A resource request or limit of the agent container, through the downward API."""

    resource: str = Field(
        pattern=r"^(limits|requests)\.(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGT]i)$",
        description="limits.cpu, limits.memory, requests.cpu, requests.memory, ... of the agent container.",
    )
    container_name: str | None = Field(
        default=None,
        pattern=r"^otlp-agent$",
        description="Only otlp-agent (the agent's own container, also the default).",
    )
    divisor: Quantity | None = Field(default=None, description='Unit of the value, e.g. "1Mi" or "1m".')


class EnvVarSource(SpecModel):
    """Where a variable's value comes from: exactly one of the four, as in a Kubernetes container."""

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="A key of a ConfigMap.")
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource of the agent container."
    )

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        chosen = [name for name, value in self if value is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef")
        return self


class EnvVar(SpecModel):
    """An extra environment variable for the agent container (and the injected sidecar)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=253, description="Variable name.")
    value: str = Field(default="", max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Take the value from a Secret or ConfigMap key of the pod's namespace, or from the pod "
        "(downward API), instead of `value`.",
    )

    @pydantic.model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value and self.value_from is not None:
            raise ValueError("set value or valueFrom, not both")
        return self


class Toleration(SpecModel):
    """A Kubernetes toleration, so node agents can run on tainted nodes."""

    key: str | None = Field(default=None, description="Taint key; empty with operator Exists matches all.")
    operator: str = Field(default="Equal", pattern=r"^(Equal|Exists)$", description="Equal or Exists.")
    value: str | None = Field(default=None, description="Taint value to match with Equal.")
    effect: str | None = Field(
        default=None,
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
        description="Taint effect to tolerate; empty means all effects.",
    )


class Autoscaling(SpecModel):
    """Horizontal autoscaling of a gateway (mode deployment or statefulset) on CPU use."""

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest replicas.")
    max_replicas: int = Field(default=5, ge=1, le=100, description="Most replicas.")
    target_cpu_utilization: int = Field(
        default=70, ge=10, le=100, description="Average CPU use, in percent of requests, to aim for."
    )


class InjectionTarget(SpecModel):
    """Which pods may ask for this pipeline as a sidecar (or env wiring)."""

    namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pods may inject it; empty: this namespace only."
    )
    pod_selector: dict[str, str] = Field(default_factory=dict, description="Labels a pod must carry.")


class Injection(SpecModel):
    """Sidecar injection settings."""

    allowed: InjectionTarget = Field(default_factory=InjectionTarget, description="Who may inject it.")
    resources: Resources = Field(
        default=Resources(
            requests=ResourceList(cpu="50m", memory="64Mi"), limits=ResourceList(memory="512Mi")
        ),
        description="Resources of the injected container (default: requests 50m CPU and 64Mi, limit 512Mi: "
        "the default memoryLimiter.limit of 256Mi plus 256Mi of agent overhead).",
        json_schema_extra=PRESENCE_MATTERS,
    )
    rollout_on_change: bool = Field(
        default=False,
        description="Restart workloads whose injected sidecar has an old config hash.",
        json_schema_extra=PRESENCE_MATTERS,
    )


class Telemetry(SpecModel):
    """The agent's own metrics, health endpoints and logs."""

    port: Port = Field(default=8888, description="Port of /metrics, /healthz and /readyz.")
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$", description="Log level.")


class Lifecycle(SpecModel):
    """Shutdown and reload behaviour."""

    shutdown_grace_period: Duration = Field(
        default=25.0, ge=0, le=3600, description="On SIGTERM, how long to drain queues before exiting."
    )
