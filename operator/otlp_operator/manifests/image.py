"""The default agent image: the agent release matching this operator, unless the environment says else."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping

REPOSITORY = "ghcr.io/otlp-operator/otlp-agent"
ENV = "OTLP_OPERATOR_AGENT_IMAGE"


def release() -> str:
    """This operator's version (its package's): what `--version` prints and the default agent tag."""
    return importlib.metadata.version("otlp-operator")


def default(environ: Mapping[str, str]) -> str:
    """`$OTLP_OPERATOR_AGENT_IMAGE` when set, else the agent image tagged with the operator's version."""
    override = environ.get(ENV, "").strip()
    if override:
        return override
    return f"{REPOSITORY}:{release()}"
