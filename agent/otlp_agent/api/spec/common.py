"""The API names, the unit-bearing field types (sizes, durations, ports, DNS labels), the base model every
spec model derives from, and what several parts share (signals, Secret references)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from otlp_agent.api import units

API_GROUP = "telemetry.otlp-operator.io"

API_VERSION = "v1alpha1"

KIND = "OTLPPipeline"

PLURAL = "otlppipelines"

SHORT_NAME = "otlpp"

MiB = 1024 * 1024

#: Receivers never accept a message above this, whatever the spec says: it bounds one request's memory.
MAX_MESSAGE_HARD_CAP = 64 * MiB

# Sizes accept an integer or any Kubernetes quantity ("16Mi", "1.5Gi", "1e6"); durations any Go duration
# ("200ms", "1m30s"). The CRD schema checks the same syntax as controller-gen writes it for quantities.
ByteSize = Annotated[
    int,
    pydantic.BeforeValidator(units.parse_bytes),
    pydantic.PlainSerializer(units.format_bytes, when_used="json"),
    pydantic.WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": units.QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

Duration = Annotated[
    float,
    pydantic.BeforeValidator(units.parse_duration),
    pydantic.PlainSerializer(units.format_duration, when_used="json"),
    pydantic.WithJsonSchema({"type": "string", "pattern": units.DURATION_PATTERN}),
]

Port = Annotated[int, Field(ge=1, le=65535)]

#: Marks a field whose *presence* the rules read (`model_fields_set`: "only for redact", "only for mode
#: sidecar", "protocol chosen by the user"): the CRD gives it no `default:`, because the API server writes a
#: schema default into every stored object and the field would always look set.
PRESENCE_MATTERS: dict[str, Any] = {"x-otlp-presence-matters": True}

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=63)]


class SpecModel(BaseModel):
    """Base for every spec model: camelCase in YAML, unknown fields refused, immutable once loaded."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_enum_values=False
    )


class Signal(StrEnum):
    traces = "traces"
    metrics = "metrics"
    logs = "logs"


class SecretKeyRef(SpecModel):
    """A key of a Secret in the pipeline's namespace; the operator mounts it, nothing copies its value."""

    name: DnsLabel = Field(description="Name of the Secret.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key inside the Secret (letters, digits, '-', '_', '.'; as Kubernetes allows).",
    )

    @pydantic.field_validator("key")
    @classmethod
    def _not_a_path(cls, key: str) -> str:
        # The key becomes a file name under the mount: "." and ".." would escape it (RE2, used for CRD
        # patterns, has no lookahead, so this check lives here and the CRD pattern admits them).
        if key in (".", ".."):
            raise ValueError(f"{key!r} is not a valid Secret key")
        return key


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the YAML-ready dict a user would write (camelCase, units as strings)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
