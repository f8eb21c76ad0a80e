"""Writing a sidecar pipeline's config copies into the other namespaces it allows (`injection.configcopy`
builds them), as part of its reconcile.

Reconcile runs on every change of the pipeline, of a pipeline its `pipelineRef`s name, on retries and on
every drift check, so the copies follow the published config as its own ConfigMap does, and a namespace
that did not exist yet gets its copy at the first reconcile after it is created (at the latest the next
drift check). Per copy: GET; create when missing; PATCH data, labels and annotations when they differ.

A copy is written only over a copy of the same pipeline (its `injected-pipeline` annotation names it):
a ConfigMap of that name that is anything else (another pipeline's own config, or its copy) is left as it
is, so one team's pipeline can never rewrite the config another team's sidecars run.

A namespace where a copy cannot be written (it does not exist yet, RBAC refuses, or its name is taken) is
reported and skipped, the others are written: that is not a failure of the pipeline, whose own children are
in place. A transient error is raised, so the reconcile is retried like any apply error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_operator.injection import markers
from otlp_operator.reconcile import kube


@dataclasses.dataclass
class Written:
    """What writing the copies did: changes (for the `Applied` Event), and namespaces it could not write."""

    changes: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # namespace -> why


class Taken(Exception):
    """The copy's name is held by a ConfigMap that is not a copy of this pipeline's config."""


async def write(client: kube.Kube, copies: list[dict[str, Any]]) -> Written:
    """Create or update every copy; raises kube.ApiError on a transient error."""
    found = Written()
    for desired in copies:
        meta = desired["metadata"]
        try:
            change = await _write_one(client, desired)
        except kube.ApiError as exc:
            if exc.transient:
                raise
            found.failed[meta["namespace"]] = str(exc)
            continue
        except Taken as exc:
            found.failed[meta["namespace"]] = str(exc)
            continue
        if change:
            found.changes.append(f"{change} ConfigMap {meta['namespace']}/{meta['name']}")
    return found


async def _write_one(client: kube.Kube, desired: dict[str, Any]) -> str | None:
    meta = desired["metadata"]
    live = await client.get("ConfigMap", meta["namespace"], meta["name"])
    if live is None:
        await client.create(desired)
        return "copied to"
    live_meta = live.get("metadata") or {}
    copied = meta["annotations"][markers.PIPELINE_ANNOTATION]
    holder = (live_meta.get("annotations") or {}).get(markers.PIPELINE_ANNOTATION)
    if holder != copied:
        raise Taken(
            f"ConfigMap {meta['namespace']}/{meta['name']} exists and is not a copy of pipeline {copied}"
            + (f" (it is pipeline {holder}'s)" if holder else "")
            + ": left as it is"
        )
    labels = {k: v for k, v in meta["labels"].items() if (live_meta.get("labels") or {}).get(k) != v}
    annotations = {
        k: v for k, v in meta["annotations"].items() if (live_meta.get("annotations") or {}).get(k) != v
    }
    live_data = live.get("data") or {}
    same_data = all(live_data.get(k) == v for k, v in desired["data"].items())
    if same_data and not labels and not annotations:
        return None
    patch: dict[str, Any] = {"metadata": {"labels": labels, "annotations": annotations}}
    patch["data"] = desired["data"]
    await client.patch("ConfigMap", meta["namespace"], meta["name"], patch)
    return "updated the copy"
