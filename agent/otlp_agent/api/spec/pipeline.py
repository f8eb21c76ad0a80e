"""The whole OTLPPipeline spec: the root model the CRD schema, the loader and the operator start from."""

from __future__ import annotations

from pydantic import Field

from otlp_agent.api.spec.common import DnsLabel, SpecModel
from otlp_agent.api.spec.exporters import Exporter
from otlp_agent.api.spec.processors import Processors
from otlp_agent.api.spec.receivers import Receivers
from otlp_agent.api.spec.routes import Routes
from otlp_agent.api.spec.workload import (
    Autoscaling,
    EnvVar,
    Injection,
    Lifecycle,
    Mode,
    Resources,
    Telemetry,
    Toleration,
)


class OTLPPipelineSpec(SpecModel):
    """Desired state of an OTLP pipeline: how the agent runs, what it receives, and where it sends."""

    mode: Mode = Field(
        default=Mode.deployment,
        description="deployment (gateway) | statefulset (gateway with a volume per replica for persistent "
        "queues) | daemonset (node agent) | sidecar.",
    )
    replicas: int = Field(
        default=1, ge=0, le=100, description="Gateway replicas (mode deployment or statefulset)."
    )
    autoscaling: Autoscaling | None = Field(default=None, description="Scale a gateway on CPU.")
    image: str | None = Field(
        default=None, max_length=512, description="Agent image; the operator's default."
    )
    resources: Resources = Field(default_factory=Resources, description="Agent container resources.")
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment variables.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels pods must match.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32, description="Tolerations.")
    priority_class_name: str | None = Field(default=None, max_length=253, description="PriorityClass.")
    receivers: Receivers = Field(default_factory=Receivers, description="Receivers.")
    processors: Processors = Field(default_factory=Processors, description="Processors.")
    exporters: list[Exporter] = Field(min_length=1, max_length=32, description="Exporters; names unique.")
    routes: Routes | None = Field(default=None, description="Routing; without it every exporter gets all.")
    injection: Injection | None = Field(default=None, description="Sidecar injection (mode sidecar).")
    allowed_referrer_namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pipelines may export to this one via pipelineRef."
    )
    telemetry: Telemetry = Field(default_factory=Telemetry, description="Self-telemetry.")
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Shutdown behaviour.")
