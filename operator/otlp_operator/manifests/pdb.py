"""The PodDisruptionBudget of a multi-replica gateway: voluntary evictions take one agent at a time.

`maxUnavailable: 1` rather than `minAvailable` so it stays right whatever the replica count or the
autoscaler decides. A single-replica gateway gets none: a budget that forbids every eviction would block
node drains.
"""

from __future__ import annotations

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import meta


def wanted(pipeline: loader.OTLPPipeline) -> bool:
    """True when the gateway always runs more than one replica."""
    s = pipeline.spec
    if s.mode not in spec.GATEWAY_MODES:
        return False
    fewest = s.autoscaling.min_replicas if s.autoscaling is not None else s.replicas
    return fewest > 1


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The PodDisruptionBudget for the gateway pods."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta.object_meta(pipeline, naming.pod_disruption_budget(pipeline), owner),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": naming.selector_labels(pipeline)}},
    }
