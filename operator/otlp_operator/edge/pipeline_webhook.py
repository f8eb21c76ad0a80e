"""The validating admission webhook: OTLPPipelines are checked with the agent's models on CREATE and UPDATE.

A denial lists every problem with its field path, so `kubectl apply` prints all of them at once:

    admission webhook "validate.<config>" denied the request: OTLPPipeline ns/name is invalid (2 problems):
    - spec.exporters[0].endpoint: ...
    - spec.receivers.otlp.http.port: ...

The answer code is 422 (Invalid), like the API server's own schema errors. The status subresource is
not reviewed (the operator's own status writes never wait on its webhook).

An UPDATE that leaves `spec` as it was (a label, an annotation, kopf's own bookkeeping patches) is
admitted even when the stored spec is invalid (stored while the webhook was off, or judged by an older
operator's rules before an upgrade): its problems come back as admission warnings instead, one per
problem, so the object stays writable and the operator can record its progress on it. An UPDATE that
changes the spec is judged like a CREATE.

A valid pipeline whose agent container's memory limit leaves less than 256Mi above its memory limiter
(`memory_fit`) is admitted with a warning, which kubectl prints as `Warning: ...`: a warning, not a
denial, so objects stored before the check existed keep being accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from otlp_agent.api import memory_fit, spec
from otlp_agent.api.problems import SpecError

from otlp_operator import validation

WEBHOOK_ID = "validate"


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the validating webhook handler to `registry`."""

    @kopf.on.validate(
        spec.API_GROUP,
        spec.API_VERSION,
        spec.PLURAL,
        id=WEBHOOK_ID,
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    def validate(body: kopf.Body, warnings: list[str], **kwargs: Any) -> None:
        try:
            pipeline = validation.parse(body)
        except SpecError as exc:
            found = [str(problem) for problem in exc.problems]
            old = kwargs.get("old")  # kopf's `old` and `operation` are not in its handler protocol's names
            if kwargs.get("operation") == "UPDATE" and old is not None and spec_unchanged(old, body):
                warnings.extend(stored_invalid(body, found))
                return
            raise kopf.AdmissionError(validation.rejection(body, found), code=422) from None
        warnings.extend(memory_fit.warnings(pipeline))


def spec_unchanged(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether an update leaves the spec as stored (metadata only, or nothing at all)."""
    return bool(validation.plain(old.get("spec") or {}) == validation.plain(new.get("spec") or {}))


def stored_invalid(body: Mapping[str, Any], found: list[str]) -> list[str]:
    """The warnings for an admitted update of a pipeline whose stored spec is invalid: one per problem
    (the API server prints each on its own `Warning:` line)."""
    metadata = body.get("metadata") or {}
    who = f"OTLPPipeline {metadata.get('namespace', '')}/{metadata.get('name', '')}"
    return [f"{who} has an invalid spec (kept as it is; fix it to change it): {problem}" for problem in found]
