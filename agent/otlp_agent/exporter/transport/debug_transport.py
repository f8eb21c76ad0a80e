"""The debug exporter: writes what would be exported to stdout or a file, for checking a pipeline by eye.

`basic` prints one line per batch; `detailed` parses the batch and prints one line per item (slow by
design: for looking, not for production traffic).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, TextIO

from otlp_agent.api import spec
from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.otlp import wire
from otlp_agent.otlp.signals import SIGNALS


class DebugTransport:
    """Prints batches instead of sending them."""

    def __init__(self, exporter: spec.Exporter) -> None:
        assert exporter.debug is not None
        self.name = exporter.name
        self.detailed = exporter.debug.verbosity == "detailed"
        self._path = exporter.debug.path
        self._file: TextIO | None = None

    def _out(self) -> TextIO:
        if self._path is None:
            return sys.stdout
        if self._file is None:
            self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across batches
        return self._file

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        out = self._out()
        noun = SIGNALS[batch.signal].item_noun
        out.write(f"[{self.name}] {batch.signal.value}: {batch.items} {noun}, {batch.size} bytes\n")
        if self.detailed:
            for line in _describe(batch.signal, wire.parse(batch.signal, batch.payload())):
                out.write(f"[{self.name}]   {line}\n")
        out.flush()
        return ExportResult.success(wire_bytes=0)

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _attributes(attributes: Any) -> str:
    return ", ".join(
        f"{kv.key}={getattr(kv.value, kv.value.WhichOneof('value') or 'string_value')}" for kv in attributes
    )


def _describe(signal: spec.Signal, message: Any) -> Iterator[str]:
    if signal == spec.Signal.traces:
        for rs in message.resource_spans:
            yield f"resource {_attributes(rs.resource.attributes)}"
            for scope in rs.scope_spans:
                for span in scope.spans:
                    yield (
                        f"span {span.name!r} trace={span.trace_id.hex()} span={span.span_id.hex()} "
                        + _attributes(span.attributes)
                    )
    elif signal == spec.Signal.logs:
        for rl in message.resource_logs:
            yield f"resource {_attributes(rl.resource.attributes)}"
            for scope in rl.scope_logs:
                for record in scope.log_records:
                    yield f"log {record.severity_text or record.severity_number} {record.body.string_value!r}"
    else:
        for rm in message.resource_metrics:
            yield f"resource {_attributes(rm.resource.attributes)}"
            for scope in rm.scope_metrics:
                for metric in scope.metrics:
                    yield f"metric {metric.name!r} ({metric.WhichOneof('data')})"
