"""The agents' ServiceAccount: an identity with no API access and no token mounted by default."""

from __future__ import annotations

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import meta


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The ServiceAccount the agent pods run as."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(pipeline, naming.service_account(pipeline), owner),
        "automountServiceAccountToken": False,
    }
