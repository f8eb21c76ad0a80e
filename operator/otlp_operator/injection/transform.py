"""`inject`, `remove` and `is_injected`: whole-pod transforms, pure and idempotent.

`inject(pod, pipeline, ...)` returns a new pod (the input is never modified):

- for a sidecar pipeline, the agent container (`sidecar`) and its volumes; as a native sidecar it
  is the first init container, so it also serves the pod's other init containers; as a regular
  container it comes last, and `kubectl.kubernetes.io/default-container` names the first app container
  (unless set) so `kubectl logs/exec` keep meaning the app;
- for every pipeline, the SDK environment of each app container (`env`; init containers are left alone);
- the markers (`markers`): label, pipeline, the ConfigMap a sidecar mounts, and the record `remove` needs.

Injecting a pod that already carries the same pipeline and ConfigMap returns it unchanged; one injected
from another pipeline or for other pod-level settings (a pod copied from a running one) is first
`remove`d, then injected.
A pod the agent cannot join (a port the agent needs is declared by an app container, or a volume or
container name is taken) raises `Refusal`: the webhook admits such a pod unchanged and says why.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.injection import env, markers, sidecar, workload


class Refusal(Exception):
    """The pod cannot get this pipeline's agent; `reason` is a CamelCase Event reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_injected(pod: dict[str, Any]) -> bool:
    """True when `pod` carries an injection marker."""
    return markers.read(pod) is not None


def inject(
    pod: dict[str, Any],
    pipeline: loader.OTLPPipeline,
    *,
    cluster_version: tuple[int, int],
    config_map: str,
    image: str,
) -> dict[str, Any]:
    """`pod` with `pipeline`'s agent (sidecar mode) mounting the ConfigMap `config_map`, and SDK wiring;
    raises Refusal."""
    is_sidecar = pipeline.spec.mode == spec.Mode.sidecar
    marker = markers.read(pod)
    wanted = markers.Marker(pipeline.namespace, pipeline.name, config_map if is_sidecar else None)
    if marker == wanted:
        return copy.deepcopy(pod)
    result = remove(pod) if marker is not None else copy.deepcopy(pod)
    pod_spec = result.setdefault("spec", {})
    metadata = result.setdefault("metadata", {})
    record: dict[str, Any] = {}
    if is_sidecar:
        _check_room(pod_spec, pipeline)
        record["defaultContainer"] = _add_sidecar(
            result, pipeline, sidecar.native(cluster_version), config_map, image
        )
    record["env"] = _wire_apps(result, pipeline)
    metadata.setdefault("labels", {})[markers.INJECTED_LABEL] = naming.label_value(pipeline.name)
    notes = metadata.setdefault("annotations", {})
    notes[markers.PIPELINE_ANNOTATION] = wanted.key
    if is_sidecar:
        notes[markers.CONFIG_MAP_ANNOTATION] = config_map
    notes[markers.RECORD_ANNOTATION] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return result


def remove(pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` without anything `inject` added (a pod without a marker is returned as it is)."""
    result = copy.deepcopy(pod)
    if not is_injected(result):
        return result
    metadata = result.setdefault("metadata", {})
    notes = metadata.get("annotations") or {}
    record = _load_record(notes.get(markers.RECORD_ANNOTATION))
    pod_spec = result.setdefault("spec", {})
    for field in ("initContainers", "containers"):
        kept = [c for c in pod_spec.get(field) or [] if c.get("name") != naming.CONTAINER]
        records = record.get("env") or {}
        pod_spec[field] = [env.unwire(c, env.Record.from_json(records.get(c.get("name")))) for c in kept]
    pod_spec["volumes"] = [
        v for v in pod_spec.get("volumes") or [] if not sidecar.owns_volume(v.get("name", ""))
    ]
    for key in (markers.PIPELINE_ANNOTATION, markers.CONFIG_MAP_ANNOTATION, markers.RECORD_ANNOTATION):
        notes.pop(key, None)
    if record.get("defaultContainer"):
        notes.pop(markers.DEFAULT_CONTAINER_ANNOTATION, None)
    (metadata.get("labels") or {}).pop(markers.INJECTED_LABEL, None)
    _drop_empty(metadata, ("labels", "annotations"))
    _drop_empty(pod_spec, ("initContainers", "volumes"))
    return result


def _check_room(pod_spec: dict[str, Any], pipeline: loader.OTLPPipeline) -> None:
    """Refuse a pod whose app containers already use the agent's ports or names."""
    wanted = sidecar.ports(pipeline)
    for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        if c.get("name") == naming.CONTAINER:
            raise Refusal("ContainerNameTaken", f"the pod already has a container named {naming.CONTAINER}")
        taken = sorted(wanted & {int(p.get("containerPort", 0)) for p in c.get("ports") or []})
        if taken:
            raise Refusal(
                "PortConflict",
                f"container {c.get('name')} declares port {taken[0]}, which the agent of pipeline "
                f"{pipeline.namespace}/{pipeline.name} listens on",
            )
    names = {v.get("name") for v in pod_spec.get("volumes") or []}
    for name in sidecar.volume_names(pipeline):
        if name in names:
            raise Refusal("VolumeNameTaken", f"the pod already has a volume named {name}")


def _add_sidecar(
    pod: dict[str, Any], pipeline: loader.OTLPPipeline, native: bool, config_map: str, image: str
) -> bool:
    """Add the agent and its volumes; True when the default-container annotation was set here."""
    pod_spec = pod["spec"]
    agent = sidecar.build(pipeline, image, native_sidecar=native)
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *sidecar.volumes(pipeline, config_map)]
    if native:
        pod_spec["initContainers"] = [agent, *(pod_spec.get("initContainers") or [])]
        return False
    apps = pod_spec.get("containers") or []
    pod_spec["containers"] = [*apps, agent]
    notes = pod.setdefault("metadata", {}).setdefault("annotations", {})
    if apps and markers.DEFAULT_CONTAINER_ANNOTATION not in notes:
        notes[markers.DEFAULT_CONTAINER_ANNOTATION] = apps[0].get("name")
        return True
    return False


def _wire_apps(pod: dict[str, Any], pipeline: loader.OTLPPipeline) -> dict[str, Any]:
    """Wire every app container; returns the records by container name."""
    target = env.wiring(pipeline)
    service = workload.service_name(pod)
    owners = workload.attributes(pod)
    records: dict[str, Any] = {}
    wired = []
    for c in pod["spec"].get("containers") or []:
        if c.get("name") == naming.CONTAINER:
            wired.append(c)
            continue
        changed, record = env.wire(c, target, service, owners)
        wired.append(changed)
        records[str(c.get("name"))] = record.as_json()
    pod["spec"]["containers"] = wired
    return records


def _load_record(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _drop_empty(mapping: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in mapping and not mapping[key]:
            del mapping[key]
