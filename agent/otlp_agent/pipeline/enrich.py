"""Kubernetes metadata enrichment (`processors.k8sAttributes`): adds k8s.* resource attributes that are
missing, on the wire.

Only what the agent knows to be true of the data is added, which depends on where it runs:

- sidecar: k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.node.name, k8s.cluster.name — the agent
  shares the app's pod, so its pod is the app's pod;
- daemonset: k8s.node.name, k8s.cluster.name — apps reach their own node's agent (hostPort, a Service with
  internalTrafficPolicy Local), but the agent's pod is not theirs;
- deployment (gateway): k8s.cluster.name only — a gateway receives from anywhere in the cluster.

Pod, namespace and node come from the downward-API variables the operator sets on the agent container
(OTLP_AGENT_POD_NAMESPACE, OTLP_AGENT_POD_NAME, OTLP_AGENT_POD_UID, OTLP_AGENT_NODE_NAME); one that is
unset or empty (an agent run by hand) adds nothing. The cluster name comes from `clusterName` in the spec.
An attribute the data already has is never changed, whatever its value.

The rewrite touches only each resource entry's Resource: the entry is re-emitted as its Resource with the
new attributes appended, followed by its other fields (scopes with their items, schema URL) copied as
bytes. No span, data point or log record is parsed. The bytes to append are cached per distinct Resource.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from otlp_agent.api import spec
from otlp_agent.otlp import wire

#: (attribute, environment variable) per mode; each comes from the operator's downward-API env.
_FROM_ENV: dict[spec.Mode, tuple[tuple[str, str], ...]] = {
    spec.Mode.sidecar: (
        ("k8s.namespace.name", "OTLP_AGENT_POD_NAMESPACE"),
        ("k8s.pod.name", "OTLP_AGENT_POD_NAME"),
        ("k8s.pod.uid", "OTLP_AGENT_POD_UID"),
        ("k8s.node.name", "OTLP_AGENT_NODE_NAME"),
    ),
    spec.Mode.daemonset: (("k8s.node.name", "OTLP_AGENT_NODE_NAME"),),
    spec.Mode.deployment: (),
}
CLUSTER_NAME = "k8s.cluster.name"
#: Distinct Resources whose additions are remembered (only Resources up to CACHEABLE_BYTES are kept).
CACHE_SIZE = 4096
CACHEABLE_BYTES = 4096


def attributes_for(s: spec.OTLPPipelineSpec, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The attributes this agent adds where missing (empty when k8sAttributes is off)."""
    settings = s.processors.k8s_attributes
    if settings is None:
        return {}
    env = os.environ if environ is None else environ
    found = {attribute: env.get(variable, "") for attribute, variable in _FROM_ENV[s.mode]}
    if settings.cluster_name:
        found[CLUSTER_NAME] = settings.cluster_name
    return {attribute: value for attribute, value in found.items() if value}


class Enricher:
    """Adds `attributes` to every resource of a request that lacks them."""

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.attributes = dict(attributes)
        self._cache: dict[bytes, bytes] = {}

    def apply(self, payload: bytes) -> bytes:
        """The request with the attributes added; `payload` itself when every resource had them all."""
        fields = list(wire.fields(payload))
        rewritten = [
            self._entry(payload, value, end) if number == wire.RESOURCE_ENTRY else None
            for number, _, value, end in fields
        ]
        if all(entry is None for entry in rewritten):
            return payload
        return b"".join(
            payload[start:end] if new is None else new
            for (_, start, _, end), new in zip(fields, rewritten, strict=True)
        )

    def _entry(self, payload: bytes, start: int, end: int) -> bytes | None:
        """A resource entry (value at payload[start:end]) with its Resource completed; None if complete."""
        entry = list(wire.fields(payload, start, end))
        old = b"".join(payload[value:stop] for number, _, value, stop in entry if number == wire.RESOURCE)
        added = self._additions(old)
        if not added:
            return None  # nothing copied: the common case once apps set these themselves
        rest = b"".join(payload[begin:stop] for number, begin, _, stop in entry if number != wire.RESOURCE)
        body = wire.length_delimited(wire.RESOURCE, old + added) + rest
        return wire.length_delimited(wire.RESOURCE_ENTRY, body)

    def _additions(self, resource: bytes) -> bytes:
        """Serialized attributes to append to `resource` (a merge: repeated fields concatenate)."""
        added = self._cache.get(resource)
        if added is None:
            present = wire.attribute_keys(resource)
            added = b"".join(
                wire.string_attribute(key, value)
                for key, value in self.attributes.items()
                if key not in present
            )
            if len(resource) <= CACHEABLE_BYTES:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[resource] = added
        return added
