"""Object metadata shared by every child: name, namespace, labels and the owner reference.

The owner is the OTLPPipeline object. Callers may pass either the whole object (as kopf hands it over:
apiVersion, kind, metadata.name, metadata.uid) or just those four fields flat; both become one controller
reference, so deleting the pipeline garbage-collects every child.
"""

from __future__ import annotations

from typing import Any

from otlp_agent.api import loader

from otlp_operator import naming

Manifest = dict[str, Any]
Owner = dict[str, Any]


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller ownerReference pointing at `owner`."""
    metadata = owner.get("metadata") or owner
    return {
        "apiVersion": str(owner["apiVersion"]),
        "kind": str(owner["kind"]),
        "name": str(metadata["name"]),
        "uid": str(metadata["uid"]),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(pipeline: loader.OTLPPipeline, name: str, owner: Owner | None) -> dict[str, Any]:
    """metadata for a child object named `name` in the pipeline's namespace."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": pipeline.namespace,
        "labels": naming.labels(pipeline),
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return metadata
