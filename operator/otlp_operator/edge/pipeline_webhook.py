"""The validating admission webhook: OTLPPipelines are checked with the agent's models on CREATE and UPDATE.

A denial lists every problem with its field path, so `kubectl apply` prints all of them at once:

    admission webhook "validate.<config>" denied the request: OTLPPipeline ns/name is invalid (2 problems):
    - spec.exporters[0].endpoint: ...
    - spec.receivers.otlp.http.port: ...

The answer code is 422 (Invalid), like the API server's own schema errors. The status subresource is
not reviewed (the operator's own status writes never wait on its webhook).

A valid pipeline whose agent container's memory limit leaves less than 256Mi above its memory limiter
(`memory_fit`) is admitted with a warning, which kubectl prints as `Warning: ...`: a warning, not a
denial, so objects stored before the check existed keep being accepted.
"""

from __future__ import annotations

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
    def validate(body: kopf.Body, warnings: list[str], **_: Any) -> None:
        try:
            pipeline = validation.parse(body)
        except SpecError as exc:
            found = [str(problem) for problem in exc.problems]
            raise kopf.AdmissionError(validation.rejection(body, found), code=422) from None
        warnings.extend(memory_fit.warnings(pipeline))
