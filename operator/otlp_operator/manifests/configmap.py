"""The ConfigMap holding the agent config the agent pods mount.

Named `<name>-config-<template hash>`, where the template hash covers everything pod-level about the
agents (`pod.template_hash`; for sidecars, the injected container, its Secrets and the pipeline's
namespace): a change of the pipeline config alone rewrites this ConfigMap's data in place — the pods keep
running and their agents reload the file — while a pod-level change makes a new name, which only the new
pods (or, for sidecars, newly injected pods) mount. A sidecar pipeline's ConfigMap is copied into the other
namespaces it allows (`injection.configcopy`), so its name must differ from that of a same-named pipeline
of another namespace: otherwise the copy of one would be the other's own ConfigMap, and one team's config
would run in the other team's sidecars. The ConfigMap carries the config hash (`telemetry.otlp-operator.io/
config-hash`), the hash agents report back for the text they run. Removing ConfigMaps no pod mounts any
more is the reconciler's job.
"""

from __future__ import annotations

import json

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import agentconfig, container, meta, pod, secrets


def build(pipeline: loader.OTLPPipeline, image: str, owner: meta.Owner | None = None) -> meta.Manifest:
    """The ConfigMap for the current spec."""
    rendered = agentconfig.render(pipeline)
    metadata = meta.object_meta(pipeline, name(pipeline, image), owner)
    metadata["annotations"] = {naming.CONFIG_HASH_ANNOTATION: rendered.hash}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {agentconfig.FILE_NAME: rendered.text},
    }


def name(pipeline: loader.OTLPPipeline, image: str) -> str:
    """The ConfigMap's name: the pipeline's, `-config-`, and the template hash."""
    return naming.config_map(pipeline, template_hash(pipeline, image))


def template_hash(pipeline: loader.OTLPPipeline, image: str) -> str:
    """What pod-level settings the config is for: the pod template's hash, or for a sidecar pipeline the
    injected container's (its image, ports, env, resources, mounts, probes), the Secrets it mounts and the
    pipeline's namespace (see the module docstring)."""
    if pipeline.spec.mode != spec.Mode.sidecar:
        return pod.template_hash(pipeline, image)
    injection = pipeline.spec.injection or spec.Injection()
    agent = container.build(pipeline, image, resources=injection.resources)
    mounted = [(ref.name, list(ref.keys)) for ref in secrets.referenced(pipeline)]
    settings = {"container": agent, "secrets": mounted, "namespace": pipeline.namespace}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return naming.short_hash(text, agentconfig.HASH_LENGTH)
