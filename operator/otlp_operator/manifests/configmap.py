"""The ConfigMap holding one version of the agent loader.

Immutable and named after the config hash: a changed spec makes a new ConfigMap instead of editing the
one running pods read, so a rollout is atomic and a bad rollout can go back to the old object. Removing
ConfigMaps no pod template refers to any more is the reconciler's job.
"""

from __future__ import annotations

from otlp_agent.api import loader

from otlp_operator import naming
from otlp_operator.manifests import agentconfig, meta


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The ConfigMap for the current spec."""
    rendered = agentconfig.render(pipeline)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(pipeline, naming.config_map(pipeline, rendered.hash), owner),
        "immutable": True,
        "data": {agentconfig.FILE_NAME: rendered.text},
    }
