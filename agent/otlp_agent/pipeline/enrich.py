"""Kubernetes metadata (`processors.k8sAttributes`): sets k8s.* resource attributes on the wire — added
where missing, and stamped over whatever the client sent for the attributes in `overwrite`.

Only what the agent knows to be true of the data is set, which depends on where it runs
(`spec.K8S_ATTRIBUTES_FROM_ENV`):

- sidecar: k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.node.name, k8s.cluster.name — the agent
  shares the app's pod, so its pod is the app's pod;
- daemonset: k8s.node.name, k8s.cluster.name — apps reach their own node's agent (hostPort, a Service with
  internalTrafficPolicy Local), but the agent's pod is not theirs;
- deployment (gateway): k8s.cluster.name only — a gateway receives from anywhere in the cluster.

Pod, namespace and node come from the downward-API variables the operator sets on the agent container
(OTLP_AGENT_POD_NAMESPACE, OTLP_AGENT_POD_NAME, OTLP_AGENT_POD_UID, OTLP_AGENT_NODE_NAME); one that is
unset or empty (an agent run by hand) sets nothing. The cluster name comes from `clusterName` in the spec.

An attribute not in `overwrite` that the data already has is never changed. One in `overwrite` (by
default, in sidecar mode, the pod's namespace, name, uid and node) is the agent's value whatever the client
said: every KeyValue with that key is removed and the agent's appended — unless the Resource already holds
exactly the agent's value, once (the common case: injected OTEL_RESOURCE_ATTRIBUTES say the same), which
costs no rewrite.

The rewrite touches only each resource entry's Resource: the entry is re-emitted as its new Resource
followed by its other fields (scopes with their items, schema URL) copied as bytes. No span, data point or
log record is parsed. The new Resource is cached per distinct Resource.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from otlp_agent.api import spec
from otlp_agent.otlp import wire
from otlp_agent.telemetry import logs

#: Distinct Resources whose rewrite is remembered (only Resources up to CACHEABLE_BYTES are kept).
CACHE_SIZE = 4096
CACHEABLE_BYTES = 4096
_UNCHANGED = b""  # cached: the Resource needs no rewrite (a rewritten Resource is never empty)


def attributes_for(s: spec.OTLPPipelineSpec, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The attributes this agent sets (empty when k8sAttributes is off)."""
    settings = s.processors.k8s_attributes
    if settings is None:
        return {}
    env = os.environ if environ is None else environ
    found = {attribute: env.get(variable, "") for attribute, variable in spec.K8S_ATTRIBUTES_FROM_ENV[s.mode]}
    if settings.cluster_name:
        found[spec.K8S_CLUSTER] = settings.cluster_name
    return {attribute: value for attribute, value in found.items() if value}


def for_spec(s: spec.OTLPPipelineSpec, environ: Mapping[str, str] | None = None) -> Enricher | None:
    """The enricher `s` asks for (None when it sets nothing); logs what it sets."""
    settings = s.processors.k8s_attributes
    if settings is None:
        return None
    attributes = attributes_for(s, environ)
    overwrite = sorted(set(settings.overwritten(s.mode)) & set(attributes))
    added = sorted(set(attributes) - set(overwrite))
    logs.info(
        f"k8sAttributes: overwriting {overwrite or 'nothing'}; adding where missing {added or 'nothing'}",
        overwrite=overwrite,
        added=added,
    )
    return Enricher(attributes, overwrite) if attributes else None


class Enricher:
    """Sets `attributes` on every resource of a request: added where missing, replaced for `overwrite`."""

    def __init__(self, attributes: Mapping[str, str], overwrite: Iterable[str] = ()) -> None:
        self.attributes = dict(attributes)
        self.overwrite = frozenset(overwrite) & self.attributes.keys()
        self._cache: dict[bytes, bytes] = {}

    def apply(self, payload: bytes) -> bytes:
        """The request with its resources rewritten; `payload` itself when none needed it."""
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
        """A resource entry (value at payload[start:end]) with its Resource rewritten; None if unchanged."""
        entry = list(wire.fields(payload, start, end))
        old = b"".join(payload[value:stop] for number, _, value, stop in entry if number == wire.RESOURCE)
        new = self._resource(old)
        if new is None:
            return None  # nothing copied: the common case once apps set these themselves
        rest = b"".join(payload[begin:stop] for number, begin, _, stop in entry if number != wire.RESOURCE)
        body = wire.length_delimited(wire.RESOURCE, new) + rest
        return wire.length_delimited(wire.RESOURCE_ENTRY, body)

    def _resource(self, resource: bytes) -> bytes | None:
        """The rewritten Resource, or None when `resource` already says everything as it should."""
        cached = self._cache.get(resource)
        if cached is None:
            cached = self._rewrite(resource) or _UNCHANGED
            if len(resource) <= CACHEABLE_BYTES:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[resource] = cached
        return cached or None

    def _rewrite(self, resource: bytes) -> bytes | None:
        kept: list[bytes] = []
        present: set[str] = set()
        changed = False
        for number, start, value_start, end in wire.fields(resource):
            if number == wire.ATTRIBUTES:
                key, text = _key_and_text(resource, value_start, end)
                if key in self.overwrite:
                    if text == self.attributes[key] and key not in present:
                        present.add(key)
                        kept.append(resource[start:end])
                    else:
                        changed = True  # the client's value (or a second copy): dropped
                    continue
                present.add(key)
            kept.append(resource[start:end])
        added = [wire.string_attribute(k, v) for k, v in self.attributes.items() if k not in present]
        if not changed and not added:
            return None
        return b"".join(kept + added)


def _key_and_text(data: bytes, start: int, end: int) -> tuple[str, str | None]:
    """The key of the KeyValue at data[start:end], and its value if it is a string (else None)."""
    key, text = "", None
    for number, _, value_start, stop in wire.fields(data, start, end):
        if number == wire.KEY:
            key = data[value_start:stop].decode("utf-8", "replace")
        elif number == wire.VALUE:
            text = None
            for inner, _, inner_start, inner_stop in wire.fields(data, value_start, stop):
                if inner == wire.STRING_VALUE:
                    text = data[inner_start:inner_stop].decode("utf-8", "replace")
    return key, text
