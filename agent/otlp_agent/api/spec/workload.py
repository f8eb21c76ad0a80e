"""How the agent runs in the cluster: mode, resources, env, scheduling, autoscaling, sidecar injection, its
own telemetry port and shutdown behaviour."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from otlp_agent.api.spec.common import DnsLabel, Duration, Port, SpecModel


class Mode(StrEnum):
    deployment = "deployment"
    statefulset = "statefulset"
    daemonset = "daemonset"
    sidecar = "sidecar"


#: The gateway modes: a Service in front of replicas that receive from anywhere.
GATEWAY_MODES = (Mode.deployment, Mode.statefulset)


class ResourceList(SpecModel):
    """CPU and memory quantities, as in a Kubernetes container."""

    cpu: str | None = Field(default=None, description='CPU quantity, e.g. "200m".')
    memory: str | None = Field(default=None, description='Memory quantity, e.g. "256Mi".')


class Resources(SpecModel):
    """Compute resources of the agent container."""

    requests: ResourceList = Field(
        default=ResourceList(cpu="100m", memory="128Mi"), description="Guaranteed resources."
    )
    limits: ResourceList = Field(default=ResourceList(memory="512Mi"), description="Upper bounds.")


class EnvVar(SpecModel):
    """An extra environment variable for the agent container."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=253, description="Variable name.")
    value: str = Field(default="", max_length=32768, description="Literal value.")


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
            requests=ResourceList(cpu="50m", memory="64Mi"), limits=ResourceList(memory="256Mi")
        ),
        description="Resources of the injected container.",
    )
    rollout_on_change: bool = Field(
        default=False, description="Restart workloads whose injected sidecar has an old config hash."
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
