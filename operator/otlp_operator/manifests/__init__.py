"""Pure builders of the Kubernetes objects an OTLPPipeline owns: one module per kind, plus `build_all`.

Nothing here talks to the API server or to kopf: each builder takes the pipeline (and the agent image
and owner) and returns a plain dict, so the same code serves the reconciler, `otlp-operator render` and
the golden-file tests. Names and labels come from `otlp_operator.naming`.

What `build_all` returns, in apply order, per mode:

- deployment: ConfigMap, ServiceAccount, Service, headless Service, [PersistentVolumeClaim], Deployment,
  [PodDisruptionBudget], [HorizontalPodAutoscaler];
- statefulset: ConfigMap, ServiceAccount, Service, headless Service, StatefulSet (with a claim template
  per replica for persistent queues), [PodDisruptionBudget], [HorizontalPodAutoscaler];
- daemonset: ConfigMap, ServiceAccount, Service, DaemonSet;
- sidecar: ConfigMap only (the injector mounts it into application pods).

The PVC exists for a single-replica Deployment gateway with a persistent queue (see `storage` for every
mode); the PDB when the gateway always runs more than one replica; the HPA when `autoscaling` is set.
Every object, and every pod template, carries `app.kubernetes.io/version`: the version of the agent image
it runs (`versioned`; a StatefulSet's claim templates do not, since they cannot change).
"""

from __future__ import annotations

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import (
    configmap,
    daemonset,
    deployment,
    hpa,
    meta,
    pdb,
    pvc,
    service,
    serviceaccount,
    statefulset,
    storage,
)


def build_all(
    pipeline: loader.OTLPPipeline, *, agent_image: str, owner: meta.Owner | None = None
) -> list[meta.Manifest]:
    """Every child object of `pipeline`, in the order they should be applied."""
    return versioned(_children(pipeline, agent_image, owner), pipeline.spec.image or agent_image)


def _children(
    pipeline: loader.OTLPPipeline, agent_image: str, owner: meta.Owner | None
) -> list[meta.Manifest]:
    children = [configmap.build(pipeline, agent_image, owner)]
    mode = pipeline.spec.mode
    if mode == spec.Mode.sidecar:
        return children
    children += [serviceaccount.build(pipeline, owner), service.build(pipeline, owner)]
    if mode == spec.Mode.daemonset:
        return [*children, daemonset.build(pipeline, agent_image, owner)]
    children.append(service.build_headless(pipeline, owner))
    if mode == spec.Mode.statefulset:
        children.append(statefulset.build(pipeline, agent_image, owner))
    else:
        if storage.plan(pipeline).backing == storage.Backing.claim:
            children.append(pvc.build(pipeline, owner))
        children.append(deployment.build(pipeline, agent_image, owner))
    if pdb.wanted(pipeline):
        children.append(pdb.build(pipeline, owner))
    if pipeline.spec.autoscaling is not None:
        children.append(hpa.build(pipeline, owner))
    return children


def versioned(objects: list[meta.Manifest], image: str) -> list[meta.Manifest]:
    """`objects` with `app.kubernetes.io/version` (the agent image's) on each and on each pod template.

    Never in a selector: a new image is a new version, and a Deployment's selector is immutable."""
    version = naming.version_label(image)
    for obj in objects:
        for metadata in (obj["metadata"], ((obj.get("spec") or {}).get("template") or {}).get("metadata")):
            if metadata is not None and "labels" in metadata:
                metadata["labels"] = dict(
                    sorted({**metadata["labels"], naming.VERSION_LABEL: version}.items())
                )
    return objects
