"""The OTLPPipeline status the operator writes: conditions, replicas, endpoints, resolved references and
rollouts."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from otlp_agent.api.spec.common import SpecModel


class Condition(SpecModel):
    """A status condition, as in every Kubernetes API."""

    type: str = Field(
        description="ConfigValid, Ready, Progressing, Degraded, ReferencesResolved, ConfigApplied or "
        "MemoryFits."
    )
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="Generation this was computed for.")


class Endpoints(SpecModel):
    """In-cluster endpoints of the pipeline's Service."""

    grpc: str | None = Field(default=None, description="OTLP/gRPC endpoint.")
    http: str | None = Field(default=None, description="OTLP/HTTP endpoint.")


class Rollouts(SpecModel):
    """The last pass restarting workloads whose injected sidecar is stale: it mounts the ConfigMap of
    earlier pod-level settings (a pipeline-config change alone is reloaded, never restarted)."""

    config_map: str | None = Field(default=None, description="The ConfigMap workloads were rolled to.")
    last_pass: str | None = Field(default=None, description="When the operator last looked (RFC 3339).")
    restarted: list[str] = Field(
        default_factory=list, description="Workloads restarted (kind/name, first 20)."
    )
    restarted_count: int = Field(default=0, description="How many workloads were restarted.")
    in_progress: int = Field(default=0, description="Workloads already rolling to this config.")
    pending: list[str] = Field(default_factory=list, description="Waiting for the rate limit (first 20).")
    pending_count: int = Field(default=0, description="How many are waiting.")
    not_restartable: list[str] = Field(
        default_factory=list, description="Stale pods without a restartable owner (bare pods, Jobs)."
    )


class ConfigMapCount(SpecModel):
    """Injected pods mounting one of the pipeline's ConfigMaps (one set of pod-level settings)."""

    config_map: str = Field(description="The ConfigMap the pods were injected with.")
    pods: int = Field(description="How many pods mount it.")


class InjectedPods(SpecModel):
    """The pods a sidecar pipeline's agent was injected into, counted at each reconcile."""

    pods: int = Field(default=0, description="Injected pods (not being deleted).")
    ready: int = Field(default=0, description="Of those, pods whose agent container is ready.")
    current: int = Field(
        default=0,
        description="Of those, pods mounting the published ConfigMap (configRollout.configMap): they reload "
        "the current config; the others run earlier pod-level settings.",
    )
    by_config_map: list[ConfigMapCount] = Field(
        default_factory=list, description="Pods per ConfigMap they mount, the most common first (at most 10)."
    )
    unreadable_namespaces: list[str] = Field(
        default_factory=list, description="Allowed namespaces whose pods the operator may not list."
    )


class ResolvedReference(SpecModel):
    """An exporter's pipelineRef as the operator resolved it (what the agent was given)."""

    exporter: str = Field(description="The exporter's name.")
    pipeline: str = Field(description="The target pipeline, namespace/name.")
    endpoint: str = Field(description="The target's Service endpoint the agent sends to.")
    protocol: str = Field(description="grpc or http/protobuf (or the exporter's explicit protocol).")
    tls: bool = Field(default=False, description="True when the target's receiver serves TLS.")


class ConfigRollout(SpecModel):
    """Where the agent config stands on the running agents (gateways and node agents): the operator writes
    it into the ConfigMap the agent pods mount, the kubelet refreshes the mounted file, each agent reloads
    it and says which config it runs on its telemetry port (`/config`), and the operator asks them."""

    hash: str | None = Field(default=None, description="The config the agents should run (configHash).")
    config_map: str | None = Field(
        default=None,
        description="The ConfigMap holding it, which the agent pods mount; its name ends with the hash of "
        "the pod-level settings (a change there rolls the pods; any other change is reloaded).",
    )
    published_at: str | None = Field(default=None, description="When this config was written (RFC 3339).")
    generation: int | None = Field(
        default=None,
        ge=0,
        description="The pipeline's metadata.generation this config was built from (the pod webhook injects "
        "sidecars of that spec only).",
    )
    copied_to: list[str] | None = Field(
        default=None,
        description="Sidecar pipelines: the other namespaces holding a copy of this ConfigMap (pods of an "
        "allowed namespace missing here are injected nothing).",
    )
    expected_by: str | None = Field(
        default=None,
        description="When every running agent should run it: publishedAt plus the longest ConfigMap volume "
        "refresh delay the operator expects (see docs/operations.md, Scaling).",
    )
    agents: int = Field(default=0, description="Agent pods asked.")
    applied: int = Field(default=0, description="Agents that report running this config.")
    pending: int = Field(default=0, description="Agents that still run an earlier config.")
    rejected: int = Field(
        default=0, description="Agents that could not apply it (they keep running their earlier config)."
    )
    unreachable: int = Field(default=0, description="Agents the operator could not ask.")
    rejections: list[str] = Field(
        default_factory=list, description="`pod: the agent's reason`, for agents that rejected it (first 10)."
    )
    checked_at: str | None = Field(default=None, description="When the agents were last asked.")


class OTLPPipelineStatus(SpecModel):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="allow")

    observed_generation: int | None = Field(default=None, description="Last generation reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    replicas: int | None = Field(default=None, description="Desired agent pods.")
    ready_replicas: int | None = Field(default=None, description="Ready agent pods.")
    ready_agents: str | None = Field(
        default=None,
        description='Ready agents of desired, "2/3" (sidecars: ready injected agents / injected pods).',
    )
    agent_version: str | None = Field(default=None, description="Version of the agent image the agents run.")
    injected: InjectedPods | None = Field(default=None, description="Sidecar mode: injected pods by config.")
    selector: str | None = Field(default=None, description="Label selector of the agent pods (scale).")
    endpoints: Endpoints | None = Field(default=None, description="Service endpoints.")
    config_hash: str | None = Field(default=None, description="Hash of the rendered agent config.")
    references: list[ResolvedReference] | None = Field(
        default=None, description="Where each pipelineRef points, as resolved by the operator."
    )
    config_rollout: ConfigRollout | None = Field(
        default=None, description="Which config the running agents report, and when all should run it."
    )
    rollouts: Rollouts | None = Field(
        default=None, description="Stale-sidecar restarts (mode sidecar with injection.rolloutOnChange)."
    )
