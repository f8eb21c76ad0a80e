"""Pipeline references: an exporter's `pipelineRef` resolved to the target pipeline's Service (pure).

An exporter may name another OTLPPipeline instead of an endpoint (`pipelineRef: {name, namespace}`).
The operator resolves it at every reconcile and renders the agent's config with a concrete `endpoint`,
so the agent never sees a reference:

- protocol: the exporter's own `protocol` when it sets one (the target must serve it), else OTLP/gRPC
  when the target serves it, else OTLP/HTTP (protobuf);
- endpoint: the target's in-cluster Service (`naming.endpoints`): `<svc>.<ns>.svc:<port>` for gRPC,
  `http(s)://<svc>.<ns>.svc:<port>` for HTTP; with `loadBalancing`, the target's headless Service instead
  (`<svc>-headless.<ns>.svc`), whose name resolves to every ready agent pod of the target, so the agent
  balances over them (only a gateway has one: a node-agent target fails with `NotBalanceable`);
- TLS: a target receiver without TLS is in-cluster plaintext (`tls.insecure: true` for gRPC); a target
  receiver with TLS gets an `https://` endpoint and the exporter's own `tls` settings (its CA).

A reference fails, with a reason for the status, when the target does not exist or is being deleted
(`TargetNotFound`), lives in another namespace that its `allowedReferrerNamespaces` does not list
(`NotAllowed`, the tenancy guard: same namespace is always allowed), is itself invalid
(`TargetInvalid`), is a sidecar pipeline, which has no Service (`TargetHasNoService`), does not serve the
exporter's explicit protocol (`ProtocolNotServed`), is the referring pipeline itself (`SelfReference`), or
cannot be read by the operator, e.g. a namespace outside its RBAC (`TargetUnreadable`), references the
referring pipeline back (`ReferenceCycle`; longer cycles, A -> B -> C -> A, are not detected), or is a node
agent while the exporter balances over the target's pods (`NotBalanceable`).

`ReferrerIndex` remembers, per referring pipeline, each reference and what it resolved to, so a watch
event on a target asks for a reconcile of exactly the referrers whose resolution would now differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from otlp_agent.api import loader, spec
from otlp_agent.api.problems import SpecError

from otlp_operator import naming, validation

#: Every reason a reference can fail with.
REASONS = (
    "TargetNotFound",
    "NotAllowed",
    "TargetInvalid",
    "TargetHasNoService",
    "ProtocolNotServed",
    "SelfReference",
    "TargetUnreadable",
    "ReferenceCycle",
    "NotBalanceable",
)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Where one exporter's reference points now (shown in `status.references`)."""

    exporter: str
    target: str  # "namespace/name"
    endpoint: str
    protocol: str
    tls: bool

    def status(self) -> dict[str, Any]:
        return {
            "exporter": self.exporter,
            "pipeline": self.target,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
            "tls": self.tls,
        }


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why one exporter's reference cannot be resolved."""

    exporter: str
    target: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"exporter {self.exporter} -> {self.target}: {self.message}"


Outcome = Resolved | Failure


@dataclasses.dataclass(frozen=True)
class Resolution:
    """A pipeline with every reference replaced by an endpoint (when all resolved), and the outcomes."""

    pipeline: loader.OTLPPipeline
    outcomes: tuple[Outcome, ...]

    @property
    def failures(self) -> list[Failure]:
        return [o for o in self.outcomes if isinstance(o, Failure)]

    @property
    def references(self) -> list[Resolved]:
        return [o for o in self.outcomes if isinstance(o, Resolved)]


def target_of(pipeline: loader.OTLPPipeline, exporter: spec.Exporter) -> naming.PipelineKey | None:
    """The (namespace, name) an exporter refers to, or None when it has an endpoint."""
    ref = exporter.pipeline_ref
    if ref is None:
        return None
    return naming.PipelineKey(ref.namespace or pipeline.namespace, ref.name)


def key_of(pipeline: loader.OTLPPipeline) -> naming.PipelineKey:
    return naming.PipelineKey(pipeline.namespace, pipeline.name)


def targets(pipeline: loader.OTLPPipeline) -> list[naming.PipelineKey]:
    """Every pipeline `pipeline` refers to, once each, in exporter order."""
    found = [target_of(pipeline, e) for e in pipeline.spec.exporters]
    return list(dict.fromkeys(key for key in found if key is not None))


def resolve(
    pipeline: loader.OTLPPipeline,
    bodies: Mapping[naming.PipelineKey, dict[str, Any] | None],
    unreadable: Mapping[naming.PipelineKey, str] | None = None,
) -> Resolution:
    """Resolve every reference of `pipeline` against the target objects in `bodies` (None: missing);
    `unreadable` says why a target could not be read at all."""
    exporters: list[spec.Exporter] = []
    outcomes: list[Outcome] = []
    for exporter in pipeline.spec.exporters:
        key = target_of(pipeline, exporter)
        if key is None:
            exporters.append(exporter)
            continue
        why = (unreadable or {}).get(key)
        if why is not None:
            target = str(key)
            message = f"the operator cannot read OTLPPipeline {target}: {why}"
            outcome: Outcome = Failure(exporter.name, target, "TargetUnreadable", message)
        else:
            outcome = resolve_one(pipeline, exporter, bodies.get(key))
        outcomes.append(outcome)
        exporters.append(_concrete(exporter, outcome) if isinstance(outcome, Resolved) else exporter)
    resolved = dataclasses.replace(pipeline, spec=pipeline.spec.model_copy(update={"exporters": exporters}))
    return Resolution(resolved, tuple(outcomes))


def resolve_one(
    pipeline: loader.OTLPPipeline, exporter: spec.Exporter, body: dict[str, Any] | None
) -> Outcome:
    """What one exporter's reference resolves to, given the target object as read (None: missing)."""
    key = target_of(pipeline, exporter)
    assert key is not None, "resolve_one needs an exporter with a pipelineRef"
    where = str(key)

    def fail(reason: str, message: str) -> Failure:
        return Failure(exporter.name, where, reason, message)

    if key == key_of(pipeline):
        return fail("SelfReference", "a pipeline cannot export to itself")
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return fail("TargetNotFound", f"OTLPPipeline {where} does not exist")
    if key.namespace != pipeline.namespace and pipeline.namespace not in _allowed(body):
        return fail(
            "NotAllowed",
            f"OTLPPipeline {where} does not list namespace {pipeline.namespace} "
            "in spec.allowedReferrerNamespaces",
        )
    try:
        target = validation.parse(body)
    except SpecError as exc:
        return fail("TargetInvalid", f"OTLPPipeline {where} is invalid ({len(exc.problems)} problems)")
    if target.spec.mode == spec.Mode.sidecar:
        return fail("TargetHasNoService", f"OTLPPipeline {where} is a sidecar pipeline and has no Service")
    if key_of(pipeline) in targets(target):  # each would forward the other's data back, forever
        return fail("ReferenceCycle", f"OTLPPipeline {where} exports back to this pipeline")
    if exporter.load_balancing is not None and target.spec.mode not in spec.GATEWAY_MODES:
        return fail(
            "NotBalanceable",
            f"OTLPPipeline {where} is a {target.spec.mode.value}: loadBalancing needs a gateway (mode "
            "deployment or statefulset), whose headless Service lists its pods",
        )
    return _endpoint(exporter, target, fail)


def _allowed(body: dict[str, Any]) -> list[str]:
    # Read from the raw object, before any validation, so a refused referrer learns nothing more.
    found = (body.get("spec") or {}).get("allowedReferrerNamespaces")
    return [str(n) for n in found] if isinstance(found, list) else []


def _endpoint(
    exporter: spec.Exporter, target: loader.OTLPPipeline, fail: Callable[[str, str], Failure]
) -> Outcome:
    otlp = target.spec.receivers.otlp
    if "protocol" in exporter.model_fields_set:
        protocol = exporter.protocol
    else:
        protocol = spec.Protocol.grpc if otlp.grpc.enabled else spec.Protocol.http_protobuf
    served = otlp.grpc if protocol == spec.Protocol.grpc else otlp.http
    if not served.enabled:
        return fail(
            "ProtocolNotServed",
            f"OTLPPipeline {target.namespace}/{target.name} does not serve {protocol.value}",
        )
    service = naming.endpoints(target, headless=exporter.load_balancing is not None)
    tls = served.tls is not None
    if protocol == spec.Protocol.grpc:
        endpoint = f"https://{service['grpc']}" if tls else str(service["grpc"])
    else:
        endpoint = str(service["http"])
    where = f"{target.namespace}/{target.name}"
    return Resolved(exporter.name, where, endpoint, protocol.value, tls)


def _concrete(exporter: spec.Exporter, resolved: Resolved) -> spec.Exporter:
    """The exporter as the agent gets it: the endpoint instead of the reference."""
    tls = exporter.tls
    if not resolved.tls and resolved.protocol == spec.Protocol.grpc.value:
        tls = tls.model_copy(update={"insecure": True})  # in-cluster plaintext gRPC
    update = {
        "endpoint": resolved.endpoint,
        "pipeline_ref": None,
        "protocol": spec.Protocol(resolved.protocol),
        "tls": tls,
    }
    return exporter.model_copy(update=update)


#: What a referrer's reference resolved to last time: (referrer, its exporter, the outcome).
_Remembered = tuple[loader.OTLPPipeline, spec.Exporter, Outcome | None]


class ReferrerIndex:
    """Per referring pipeline, its references and what each resolved to at its last reconcile."""

    def __init__(self) -> None:
        self._by_referrer: dict[naming.PipelineKey, list[_Remembered]] = {}

    def expect(self, pipeline: loader.OTLPPipeline) -> None:
        """Record the references of `pipeline` before its targets are read: any event on a target until
        `remember` asks for another reconcile, so a target created or changed meanwhile is never missed."""
        key = key_of(pipeline)
        entries: list[_Remembered] = [
            (pipeline, e, None) for e in pipeline.spec.exporters if e.pipeline_ref is not None
        ]
        if entries:
            self._by_referrer[key] = entries
        else:
            self._by_referrer.pop(key, None)

    def remember(self, pipeline: loader.OTLPPipeline, resolution: Resolution) -> None:
        """Record the references of `pipeline` (replacing what was known about it)."""
        with_refs = [e for e in pipeline.spec.exporters if e.pipeline_ref is not None]
        entries = list(zip(with_refs, resolution.outcomes, strict=True))
        key = key_of(pipeline)
        if entries:
            self._by_referrer[key] = [(pipeline, e, outcome) for e, outcome in entries]
        else:
            self._by_referrer.pop(key, None)

    def forget(self, referrer: naming.PipelineKey) -> None:
        self._by_referrer.pop(referrer, None)

    def referrers_to_reconcile(
        self, target: naming.PipelineKey, body: dict[str, Any] | None
    ) -> list[naming.PipelineKey]:
        """Referrers of `target` whose references resolve differently now that it looks like `body`."""
        found = []
        for referrer, entries in sorted(self._by_referrer.items()):
            for pipeline, exporter, before in entries:
                if (
                    target_of(pipeline, exporter) == target
                    and resolve_one(pipeline, exporter, body) != before
                ):
                    found.append(referrer)
                    break
        return found
