"""The OpenTelemetry SDK environment of application containers, merged with what the user already set.

Each app container gets, unless it sets them itself:

- `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_EXPORTER_OTLP_PROTOCOL`: the agent (a sidecar on 127.0.0.1, a
  gateway's Service, or the node agent at the node's IP). OTLP/HTTP with protobuf when the agent serves
  HTTP (the protocol the OpenTelemetry specification recommends as the default, and the agent's cheaper
  receiver), gRPC otherwise. A container that sets the endpoint keeps both variables as they are; one
  that sets only the protocol gets the endpoint of that protocol.
- `OTEL_SERVICE_NAME`: the workload's name, unless the container sets it or sets `service.name` in
  `OTEL_RESOURCE_ATTRIBUTES` (the variable would override that attribute).
- `OTEL_RESOURCE_ATTRIBUTES`: k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.node.name,
  k8s.container.name and the owning workloads (k8s.deployment.name, ...). Pod identity comes from
  downward-API variables (`OTEL_K8S_*`, placed first in `env` because Kubernetes expands `$(VAR)` only
  for variables defined earlier): at admission a ReplicaSet's pod has no name or uid yet. A user's
  literal value is kept and only the keys it lacks are appended; a value from `valueFrom` is left
  alone entirely (its content is unknown at admission).

What was added is returned as a `Record`, which `unwire` takes to undo exactly that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_agent.api import loader, spec

from otlp_operator import naming

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
SERVICE_NAME = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
NODE_IP = "OTEL_K8S_NODE_IP"
#: Downward-API variables the resource attributes refer to: (variable, field path, attribute).
POD_FIELDS = (
    ("OTEL_K8S_NAMESPACE_NAME", "metadata.namespace", "k8s.namespace.name"),
    ("OTEL_K8S_POD_NAME", "metadata.name", "k8s.pod.name"),
    ("OTEL_K8S_POD_UID", "metadata.uid", "k8s.pod.uid"),
    ("OTEL_K8S_NODE_NAME", "spec.nodeName", "k8s.node.name"),
)
SIDECAR_HOST = "127.0.0.1"  # the agent listens on IPv4; "localhost" may resolve to ::1 first
HTTP_PROTOCOLS = ("http/protobuf", "http/json")


@dataclasses.dataclass(frozen=True)
class Wiring:
    """Where app containers send telemetry: an endpoint per protocol the agent serves, best first."""

    endpoints: dict[str, str]
    #: Extra downward-API variables the endpoints refer to (the node IP for node agents).
    fields: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Record:
    """What `wire` added to one container: whole variables, and keys appended to a user's attributes."""

    variables: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {"variables": list(self.variables), "attributes": list(self.attributes)}

    @classmethod
    def from_json(cls, data: Any) -> Record:
        data = data if isinstance(data, dict) else {}
        return cls(tuple(data.get("variables") or ()), tuple(data.get("attributes") or ()))


def wiring(pipeline: loader.OTLPPipeline) -> Wiring:
    """The wiring to `pipeline`'s agents, per its mode."""
    otlp = pipeline.spec.receivers.otlp
    mode = pipeline.spec.mode
    fields: tuple[tuple[str, str], ...] = ()
    if mode == spec.Mode.sidecar:
        host = SIDECAR_HOST
    elif mode == spec.Mode.daemonset:
        host, fields = f"$({NODE_IP})", ((NODE_IP, "status.hostIP"),)
    else:
        host = f"{naming.service(pipeline)}.{pipeline.namespace}.svc"
    endpoints: dict[str, str] = {}
    if otlp.http.enabled:
        url = f"{'https' if otlp.http.tls else 'http'}://{host}:{otlp.http.port}"
        endpoints.update({protocol: url for protocol in HTTP_PROTOCOLS})
    if otlp.grpc.enabled:
        endpoints["grpc"] = f"{'https' if otlp.grpc.tls else 'http'}://{host}:{otlp.grpc.port}"
    return Wiring(endpoints, fields)


def wire(
    container: dict[str, Any], target: Wiring, service: str, owners: dict[str, str]
) -> tuple[dict[str, Any], Record]:
    """`container` with the SDK environment added (never replacing a user's variable) and the record."""
    env = [dict(entry) for entry in container.get("env") or []]
    names = {entry.get("name") for entry in env}
    literals = {e["name"]: e.get("value") for e in env if "valueFrom" not in e}
    head = [
        {"name": variable, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for variable, path in (*((v, p) for v, p, _ in POD_FIELDS), *target.fields)
        if variable not in names
    ]
    tail = _exporter(literals, names, target)
    if SERVICE_NAME not in names and "service.name" not in _keys(literals.get(RESOURCE_ATTRIBUTES)):
        tail.append({"name": SERVICE_NAME, "value": service})
    ours = _attributes(container, owners)
    appended: tuple[str, ...] = ()
    if RESOURCE_ATTRIBUTES not in names:
        tail.append({"name": RESOURCE_ATTRIBUTES, "value": _join(ours)})
    elif RESOURCE_ATTRIBUTES in literals:
        appended = _append_missing(env, ours)
    record = Record(tuple(e["name"] for e in (*head, *tail)), appended)
    return {**container, "env": [*head, *env, *tail]}, record


def unwire(container: dict[str, Any], record: Record) -> dict[str, Any]:
    """`container` without what `wire` added according to `record`."""
    env = []
    for entry in container.get("env") or []:
        if entry.get("name") in record.variables:
            continue
        if entry.get("name") == RESOURCE_ATTRIBUTES and record.attributes and "value" in entry:
            kept = [p for p in _pairs(entry["value"]) if p[0] not in record.attributes]
            entry = {**entry, "value": ",".join(f"{k}={v}" for k, v in kept)}
        env.append(entry)
    result = {**container, "env": env}
    if not env:
        del result["env"]
    return result


def _exporter(literals: dict[str, Any], names: set[Any], target: Wiring) -> list[dict[str, Any]]:
    if ENDPOINT in names or not target.endpoints:
        return []
    if PROTOCOL in names:  # the user chose a protocol: point it at that receiver, if the agent has it
        chosen = literals.get(PROTOCOL)
        endpoint = None if chosen is None else target.endpoints.get(str(chosen).strip())
        return [] if endpoint is None else [{"name": ENDPOINT, "value": endpoint}]
    protocol, endpoint = next(iter(target.endpoints.items()))
    return [{"name": ENDPOINT, "value": endpoint}, {"name": PROTOCOL, "value": protocol}]


def _append_missing(env: list[dict[str, Any]], ours: dict[str, str]) -> tuple[str, ...]:
    """Append to the user's literal OTEL_RESOURCE_ATTRIBUTES (in place) the keys it lacks."""
    entry = next(e for e in env if e["name"] == RESOURCE_ATTRIBUTES)
    present = _keys(entry.get("value"))
    missing = {key: value for key, value in ours.items() if key not in present}
    if missing:
        entry["value"] = ",".join(part for part in (entry.get("value") or "", _join(missing)) if part)
    return tuple(missing)


def _attributes(container: dict[str, Any], owners: dict[str, str]) -> dict[str, str]:
    found = {attribute: f"$({variable})" for variable, _, attribute in POD_FIELDS}
    found["k8s.container.name"] = str(container.get("name", ""))
    return {**found, **owners}


def _pairs(value: str | None) -> list[tuple[str, str]]:
    pairs = []
    for part in (value or "").split(","):
        key, sep, val = part.partition("=")
        if sep and key.strip():
            pairs.append((key.strip(), val))
    return pairs


def _keys(value: str | None) -> set[str]:
    return {key for key, _ in _pairs(value)}


def _join(attributes: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in attributes.items())
