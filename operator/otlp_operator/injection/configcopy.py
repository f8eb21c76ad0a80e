"""Copies of a sidecar pipeline's ConfigMap for the other namespaces it serves.

A pod can only mount a ConfigMap of its own namespace, so a sidecar pipeline that allows pods of other
namespaces (`injection.allowed.namespaces`) has its config published there too: the same ConfigMap (same
name, same data, rewritten when the pipeline config changes, so injected sidecars there reload it too),
labelled `telemetry.otlp-operator.io/config-of: <pipeline>` and `telemetry.otlp-operator.io/
config-of-namespace: <its namespace>` instead of the pipeline label (they are not
children: an ownerReference cannot cross namespaces, so they are not garbage-collected with the pipeline;
like the pipeline's own ConfigMaps of earlier pod-level settings, which injected pods may still mount,
they stay until deleted, see docs/injection.md). Every reconcile of the pipeline writes them
(`reconcile.config_copies`), and never over a ConfigMap that is not a copy of this pipeline's config.
"""

from __future__ import annotations

import copy
from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator import manifests, naming
from otlp_operator.injection import markers
from otlp_operator.manifests import configmap

COPY_LABEL = f"{naming.PREFIX}config-of"
#: The copied pipeline's namespace: pipelines of one name in two namespaces may copy into a third.
COPY_NAMESPACE_LABEL = f"{naming.PREFIX}config-of-namespace"


def build(pipeline: loader.OTLPPipeline, image: str) -> list[dict[str, Any]]:
    """One ConfigMap per namespace the pipeline allows besides its own (none for other modes), labelled
    with the version of the agent `image` (the operator's, unless the spec sets one)."""
    if pipeline.spec.mode != spec.Mode.sidecar or pipeline.spec.injection is None:
        return []
    (original,) = manifests.versioned([configmap.build(pipeline, image)], pipeline.spec.image or image)
    labels = {k: v for k, v in original["metadata"]["labels"].items() if k != naming.PIPELINE_LABEL}
    labels[COPY_LABEL] = naming.label_value(pipeline.name)
    labels[COPY_NAMESPACE_LABEL] = pipeline.namespace
    copies = []
    for namespace in sorted(set(pipeline.spec.injection.allowed.namespaces) - {pipeline.namespace}):
        found = copy.deepcopy(original)
        found["metadata"] = {
            "name": original["metadata"]["name"],
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                **original["metadata"]["annotations"],
                markers.PIPELINE_ANNOTATION: f"{pipeline.namespace}/{pipeline.name}",
            },
        }
        copies.append(found)
    return copies
