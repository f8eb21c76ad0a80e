"""The OTLPPipeline spec: the single source of truth for the API.

Every field has a description, a default and bounds. The CRD schema, the configuration reference and the
agent's and operator's validation are all derived from these models; cross-field rules (which need the
whole spec) live beside them in `otlp_agent.api.rules`. Field names are Python snake_case with camelCase
aliases, which is what users write in YAML.

One module per part of the spec (`common`, `workload`, `receivers`, `processors`, `exporters`, `routes`,
`pipeline`, `status`); this package exports every model, so code reads `spec.Exporter` wherever it lives.
"""

from __future__ import annotations

from otlp_agent.api.spec.common import (
    API_GROUP,
    API_VERSION,
    KIND,
    MAX_MESSAGE_HARD_CAP,
    PLURAL,
    SHORT_NAME,
    ByteSize,
    DnsLabel,
    Duration,
    MiB,
    Port,
    SecretKeyRef,
    Signal,
    SpecModel,
    dump,
)
from otlp_agent.api.spec.exporters import (
    ClientTLS,
    Compression,
    DebugExporter,
    Delivery,
    Exporter,
    HeaderFromSecret,
    PipelineRef,
    Protocol,
    Queue,
    QueueType,
    Retry,
    WhenFull,
)
from otlp_agent.api.spec.pipeline import OTLPPipelineSpec
from otlp_agent.api.spec.processors import (
    AttributeAction,
    AttributeActionType,
    AttributeProcessor,
    BatchSettings,
    K8sAttributes,
    MemoryLimiter,
    Processors,
    Sampling,
)
from otlp_agent.api.spec.receivers import (
    Cors,
    GrpcReceiver,
    HttpReceiver,
    OtlpReceivers,
    ReceiverAuth,
    Receivers,
    ServerTLS,
)
from otlp_agent.api.spec.routes import AttributeMatch, RouteRule, Routes
from otlp_agent.api.spec.status import Condition, Endpoints, OTLPPipelineStatus, ResolvedReference, Rollouts
from otlp_agent.api.spec.workload import (
    Autoscaling,
    EnvVar,
    Injection,
    InjectionTarget,
    Lifecycle,
    Mode,
    ResourceList,
    Resources,
    Telemetry,
    Toleration,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "MAX_MESSAGE_HARD_CAP",
    "PLURAL",
    "SHORT_NAME",
    "AttributeAction",
    "AttributeActionType",
    "AttributeMatch",
    "AttributeProcessor",
    "Autoscaling",
    "BatchSettings",
    "ByteSize",
    "ClientTLS",
    "Compression",
    "Condition",
    "Cors",
    "DebugExporter",
    "Delivery",
    "DnsLabel",
    "Duration",
    "Endpoints",
    "EnvVar",
    "Exporter",
    "GrpcReceiver",
    "HeaderFromSecret",
    "HttpReceiver",
    "Injection",
    "InjectionTarget",
    "K8sAttributes",
    "Lifecycle",
    "MemoryLimiter",
    "MiB",
    "Mode",
    "OTLPPipelineSpec",
    "OTLPPipelineStatus",
    "OtlpReceivers",
    "PipelineRef",
    "Port",
    "Processors",
    "Protocol",
    "Queue",
    "QueueType",
    "ReceiverAuth",
    "Receivers",
    "ResolvedReference",
    "ResourceList",
    "Resources",
    "Retry",
    "Rollouts",
    "RouteRule",
    "Routes",
    "Sampling",
    "SecretKeyRef",
    "ServerTLS",
    "Signal",
    "SpecModel",
    "Telemetry",
    "Toleration",
    "WhenFull",
    "dump",
]
