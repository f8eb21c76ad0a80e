"""The agent's configuration as the operator renders it: text, hash, and nothing else.

The text is a complete OTLPPipeline manifest (what `otlp-agent run --config` and `loader.load_file`
read), with every default explicit so what runs is what was reviewed, serialized with sorted keys so the
same spec always gives the same bytes. The hash (first 10 hex digits of its SHA-256) is what the status
shows (`configHash`) and what each agent reports back for the file it runs (the full SHA-256 of the same
bytes), so the operator can tell which agents run it.

`replicas` and `autoscaling` are left out of the text: they shape the workload, not the agent, and with
them in the text scaling a gateway (`kubectl scale`) would make every agent reload for nothing. The agent
reads their defaults, which it never uses.
"""

from __future__ import annotations

import dataclasses

import yaml
from otlp_agent.api import loader, spec

from otlp_operator import naming

FILE_NAME = "pipeline.yaml"
HASH_LENGTH = 10
_WORKLOAD_ONLY = ("replicas", "autoscaling")


@dataclasses.dataclass(frozen=True)
class RenderedConfig:
    """The agent config text and its hash."""

    text: str
    hash: str


def render(pipeline: loader.OTLPPipeline) -> RenderedConfig:
    """Render `pipeline` for the agent."""
    body = spec.dump(pipeline.spec)
    for field in _WORKLOAD_ONLY:
        body.pop(field, None)
    manifest = {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": pipeline.name, "namespace": pipeline.namespace},
        "spec": body,
    }
    text = yaml.safe_dump(manifest, sort_keys=True)
    return RenderedConfig(text=text, hash=naming.short_hash(text, HASH_LENGTH))
