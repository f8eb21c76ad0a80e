"""An intake (what receivers hand requests to) whose exporters record what they are handed instead of
exporting, and traces requests from resources of given namespaces: what the routing tests drive.

* `make(body)` — the Intake for a spec body with exporters "a", "b" and "shared" (`EXPORTERS`) and the
  record of what each was handed, {exporter name: [(signal, bytes, items)]}.
* `teams(*namespaces)` — traces bytes, one resource of two spans per namespace (None: no namespace).
* `TEAM_A` — the route match on namespace "team-a".
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal
from otlp_agent.pipeline.intake import Intake
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support.placed_requests import request, serialize

EXPORTERS = [{"name": name, "debug": {}} for name in ("a", "b", "shared")]
TEAM_A = {"attribute": "k8s.namespace.name", "equals": "team-a"}


def make(body: dict[str, Any], environ: dict[str, str] | None = None) -> tuple[Intake, dict[str, list[Any]]]:
    pipeline = Intake(
        spec.OTLPPipelineSpec.model_validate({"exporters": EXPORTERS, **body}),
        AgentMetrics(),
        environ=environ,
    )
    handed: dict[str, list[Any]] = {e.name: [] for e in pipeline.exporters}
    for exporter in pipeline.exporters:

        async def accept(signal: Signal, data: bytes, items: int, name: str = exporter.name) -> list[Any]:
            handed[name].append((signal, data, items))
            return []

        exporter.accept = accept  # type: ignore[method-assign]
    return pipeline, handed


def teams(*names: str | None) -> bytes:
    message = request(Signal.traces, [[2] for _ in names])
    for entry, name in zip(message.resource_spans, names, strict=True):
        if name is not None:
            entry.resource.attributes.append(
                common_pb2.KeyValue(key="k8s.namespace.name", value=common_pb2.AnyValue(string_value=name))
            )
    return serialize(message)
