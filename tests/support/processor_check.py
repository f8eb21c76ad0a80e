"""The property the wire-level processor tests check on every request they draw: the agent's processor
chain, run on the request's bytes, does exactly what the protobuf reference (processor_reference.py) does
with the parsed message — same message after parsing, same item count, same drops per filter rule, same
number of redactions. A config the spec rules refuse is no example (`hypothesis.assume`).

* `check(signal, data, processors_config)` — asserts all of that for one request and config.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from otlp_agent.api import rules
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import wire
from otlp_agent.pipeline.processors import chain
from otlp_agent.telemetry.metrics import AgentMetrics

from tests.support import processor_reference as reference


def redactions(metrics: AgentMetrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "otlp_agent_processor_redacted_values"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def filtered(metrics: AgentMetrics, signal: Signal) -> dict[str, int]:
    return {
        sample.labels["rule"]: int(sample.value)
        for family in metrics.registry.collect()
        if family.name == "otlp_agent_processor_filtered_items"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["signal"] == signal.value and sample.value
    }


def check(signal: Signal, data: bytes, config: dict[str, Any]) -> None:
    try:
        p = rules.validate_spec({"exporters": [{"name": "x", "debug": {}}], "processors": config}).processors
    except ValueError:
        assume(False)
        return
    metrics = AgentMetrics()
    processors_chain = chain.build(p, metrics)
    if processors_chain is None:  # nothing configured: the intake's fast path, tested elsewhere
        assert not config or config.get("sampling", {}).get("ratio", 0) >= 1
        return
    items = wire.validate_and_count(signal, data)
    out, count = processors_chain.apply(signal, data, items)
    expected, dropped, per_rule, redacted = reference.process(signal, wire.parse(signal, data), p)
    got = wire.parse(signal, out)
    assert got == expected
    assert count == items - dropped == wire.validate_and_count(signal, out)
    assert filtered(metrics, signal) == per_rule
    assert redactions(metrics) == redacted
