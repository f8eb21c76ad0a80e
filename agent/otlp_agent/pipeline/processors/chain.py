"""The processors of one pipeline, in their fixed order: resource → filter → sampling → attributes.

`build` returns None when no processor is configured: the intake then hands requests on untouched, with no
call and no copy. Otherwise `apply(signal, payload, items)` returns the processed request and its item
count, working at the cheapest level that can decide:

1. Wire: the request is cut into resource entries (slices of its bytes). Each entry's Resource is looked
   up in a cache keyed by its bytes (an SDK sends the same Resource every time) that remembers the result
   of the resource actions, the filter rules the resource alone decides, and which attribute actions can
   apply. An entry a rule drops whole is left out without being parsed (its items are counted with a upb
   parse of the dropped bytes); an entry nothing needs to look inside is copied as bytes, its Resource
   replaced if the resource actions changed it.
2. Lite parse: only entries that undecided filter rules, sampling, or attribute actions (whose keys occur
   in the entry's bytes) must look inside are parsed, with the lite schemas (see `lite`, `items`), and
   serialized again. Spans and records are never turned into full protobuf objects.

A request nothing changed is returned as the same bytes object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_agent.api import processor_rules, spec
from otlp_agent.api.spec import Signal
from otlp_agent.otlp import inspection, wire
from otlp_agent.pipeline.processors import attributes as attribute
from otlp_agent.pipeline.processors import conditions, items, lite, wire_actions
from otlp_agent.pipeline.processors.attributes import Action, ActionList
from otlp_agent.pipeline.processors.sampling import LogSampler, TraceSampler
from otlp_agent.telemetry.metrics import AgentMetrics

#: Requests larger than this are processed on a worker thread (about 500 spans of a typical SDK).
THREAD_BYTES = 256 * 1024
#: Distinct Resources whose plan is remembered per signal (only those up to CACHEABLE_BYTES).
CACHE_SIZE = 4096
CACHEABLE_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with entries carrying one Resource."""

    resource: bytes | None  # the Resource after the resource actions; None when unchanged
    redacted: dict[int, int]  # values the resource actions redacted, per action index
    dropped_by: str | None  # the filter rule that drops such entries whole
    ctx: dict[bytes, bytes]  # the (processed) resource attributes, for conditions
    work: items.Work | None  # what must be done inside; None: nothing


class SignalChain:
    """The processors that apply to one signal."""

    def __init__(self, signal: Signal, p: spec.Processors, metrics: AgentMetrics) -> None:
        self.signal = signal
        self.metrics = metrics
        self.resource_actions = _actions(p.resource, signal)
        self.rules = [
            items.Rule(rule.name, conditions.CompiledMatch(rule, signal))
            for rule in (p.filter.rules if p.filter else [])
            if signal in processor_rules.effective_signals(rule.signals, rule)
        ]
        sampling = p.sampling if p.sampling and signal in p.sampling.signals else None
        sampling = sampling if sampling and sampling.ratio < 1 else None
        self.traces = TraceSampler(sampling) if sampling and signal == Signal.traces else None
        self.logs = LogSampler(sampling) if sampling and signal == Signal.logs else None
        self.actions = _actions(p.attributes, signal)
        self.wire = (
            wire_actions.WireActions(signal, self.actions.actions)
            if self.actions is not None and wire_actions.WireActions.supports(signal, self.actions.actions)
            else None
        )
        self._plans: dict[bytes, Plan] = {}
        self._counted = _counted(self, metrics, signal.value)

    @property
    def active(self) -> bool:
        return bool(self.resource_actions or self.rules or self.traces or self.logs or self.actions)

    def apply(self, payload: bytes, count: int) -> tuple[bytes, int]:
        tally = items.Tally()
        view = memoryview(payload)  # slices of it are joined without being copied first
        parts: list[bytes | memoryview] = []
        changed = False
        dropped = 0
        for number, start, value_start, end in wire.fields(payload):
            entry = self._entry(payload, view, start, value_start, end, tally) if number == 1 else None
            if entry is None:
                parts.append(view[start:end])
                continue
            changed = True
            parts += entry[0]
            dropped += entry[1]
        self._flush(tally)
        self._count_through(tally, count)
        if not changed:
            return payload, count
        return b"".join(parts), count - dropped

    def _entry(
        self, payload: bytes, view: memoryview, start: int, value_start: int, end: int, tally: items.Tally
    ) -> tuple[list[bytes | memoryview], int] | None:
        """(the entry's new bytes in pieces, items dropped); None when it is unchanged."""
        plan = self._plan(wire.resource_bytes(payload, value_start, end))
        for index, values in plan.redacted.items():
            tally.redacted[("resource", index)] = tally.redacted.get(("resource", index), 0) + values
        if plan.dropped_by is not None:
            gone = wire.validate_and_count(self.signal, payload[start:end])
            tally.drop(plan.dropped_by, gone)
            return [], gone
        value: list[bytes | memoryview] = [view[value_start:end]]
        if plan.resource is not None:
            value = _with_resource(payload, view, value_start, end, plan.resource)
        work = plan.work
        actions = work.actions if work is not None and not (work.rules or work.traces or work.logs) else None
        if actions is not None and self.wire is not None and actions is self.actions:
            try:
                new = self._on_the_wire(payload, value_start, end, value, tally)
            except wire_actions.Unsupported:
                pass  # the lite schemas below
            else:
                if new is not None:
                    return [_header(len(new)), new], 0
                actions = work = None
        if actions is not None and not actions.could_change(payload[value_start:end]):
            work = None
        if work is None:
            if plan.resource is None:
                return None
            return [_header(sum(len(piece) for piece in value)), *value], 0
        entry = lite.parse_entry(self.signal, b"".join(value))
        dropped, empty = items.walk(self.signal, entry, conditions.Context(plan.ctx), work, tally)
        if empty:
            return [], dropped
        data = entry.SerializeToString()
        return [_header(len(data)), data], dropped

    def _on_the_wire(
        self, payload: bytes, value_start: int, end: int, value: list[bytes | memoryview], tally: items.Tally
    ) -> bytes | None:
        """The entry's new value after attribute actions applied on the wire (see `wire_actions`), None
        when they changed nothing; raises wire_actions.Unsupported when the lite schemas must do it."""
        assert self.wire is not None
        data, start, stop = payload, value_start, end
        if len(value) > 1:  # the Resource was replaced: work on the new value
            data = b"".join(value)
            start, stop = 0, len(data)
        return self.wire.rewrite(data, start, stop, tally.attribute_redactions)

    def _plan(self, resource: bytes) -> Plan:
        plan = self._plans.get(resource)
        if plan is None:
            plan = self._make_plan(resource)
            if len(resource) <= CACHEABLE_BYTES:
                if len(self._plans) >= CACHE_SIZE:
                    self._plans.clear()
                self._plans[resource] = plan
        return plan

    def _make_plan(self, resource: bytes) -> Plan:
        new, redacted = (
            _apply_to_resource(self.resource_actions, resource) if self.resource_actions else (None, {})
        )
        current = new if new is not None else resource
        ctx = conditions.Context(conditions.attribute_map(_attribute_blobs(current)))
        undecided = []
        for rule in self.rules:
            verdict = rule.match.at(ctx, conditions.RESOURCE)
            if verdict:
                return Plan(new, redacted, rule.name, ctx.resource, None)
            if verdict is None:
                undecided.append(rule)
        actions = self.actions
        if actions is not None:
            live = [
                a
                for a in actions.actions
                if a.match is None or a.match.at(ctx, conditions.RESOURCE) is not False
            ]
            if len(live) < len(actions.actions):
                actions = ActionList(live) if live else None
        needed = undecided or self.traces or self.logs or actions
        work = items.Work(undecided, self.traces, self.logs, actions) if needed else None
        return Plan(new, redacted, None, ctx.resource, work)

    def _flush(self, tally: items.Tally) -> None:
        signal = self.signal.value
        for index, values in tally.attribute_redactions.items():
            self.metrics.processor_redacted.labels("attributes", str(index), signal).inc(values)
        for (processor, index), values in tally.redacted.items():
            self.metrics.processor_redacted.labels(processor, str(index), signal).inc(values)
        for rule, n in tally.filtered.items():
            self.metrics.processor_filtered.labels(rule, signal).inc(n)
        if tally.kept:
            self.metrics.processor_sampled.labels(signal, "kept").inc(tally.kept)
        if tally.sampled_out:
            self.metrics.processor_sampled.labels(signal, "dropped").inc(tally.sampled_out)
        if tally.no_randomness:
            self.metrics.processor_sampled.labels(signal, "no_randomness").inc(tally.no_randomness)

    def _count_through(self, tally: items.Tally, count: int) -> None:
        """Items into and out of each configured processor (the collector's processorhelper metrics): the
        filter removes what its rules dropped, sampling what it did not keep; the others remove nothing."""
        left = count
        for name, (incoming, outgoing) in self._counted.items():
            incoming.inc(left)
            if name == "filter":
                left -= sum(tally.filtered.values())
            elif name == "sampling":
                left -= tally.sampled_out + tally.no_randomness
            outgoing.inc(left)


def _counted(chain: SignalChain, metrics: AgentMetrics, signal: str) -> dict[str, tuple[Any, Any]]:
    """The (incoming, outgoing) counters of each configured processor, in the chain's order."""
    configured = {
        "resource": chain.resource_actions is not None,
        "filter": bool(chain.rules),
        "sampling": chain.traces is not None or chain.logs is not None,
        "attributes": chain.actions is not None,
    }
    return {
        name: (
            metrics.processor_incoming.labels(name, signal),
            metrics.processor_outgoing.labels(name, signal),
        )
        for name, present in configured.items()
        if present
    }


def _actions(processor: spec.AttributeProcessor | None, signal: Signal) -> ActionList | None:
    if processor is None:
        return None
    compiled = [
        Action(action, index, conditions.CompiledMatch(action.match, signal) if action.match else None)
        for index, action in enumerate(processor.actions)
        if signal in processor_rules.effective_signals(action.signals, action.match)
    ]
    return ActionList(compiled) if compiled else None


def _attribute_blobs(resource: bytes) -> list[bytes]:
    return [resource[v:e] for n, _, v, e in wire.fields(resource) if n == wire.ATTRIBUTES]


def _apply_to_resource(actions: ActionList, resource: bytes) -> tuple[bytes | None, dict[int, int]]:
    """(the Resource after the actions, attributes first and its other fields after, or None if unchanged;
    values redacted per action). Matches are decided on the Resource as it arrived."""
    attributes = attribute.Attributes(_attribute_blobs(resource))
    redacted: dict[int, int] = {}
    ctx = conditions.Context(conditions.attribute_map(attributes.blobs))
    if not ActionList.run(attributes, actions.active(ctx), redacted):
        return None, redacted
    rest = b"".join(resource[s:e] for n, s, _, e in wire.fields(resource) if n != wire.ATTRIBUTES)
    return b"".join(
        wire.length_delimited(wire.ATTRIBUTES, blob) for blob in attributes.blobs
    ) + rest, redacted


def _with_resource(
    payload: bytes, view: memoryview, value_start: int, end: int, resource: bytes
) -> list[bytes | memoryview]:
    """An entry's value, in pieces, with its Resource replaced (its other fields are slices of `view`)."""
    rest = [view[s:e] for n, s, _, e in wire.fields(payload, value_start, end) if n != wire.RESOURCE]
    return [wire.length_delimited(wire.RESOURCE, resource), *rest]


def _header(length: int) -> bytes:
    """Tag and length of a resource entry (field 1 of the request) of `length` bytes."""
    return b"\x0a" + wire.varint(length)


class Chain:
    """Every signal's processors; `run` is what the intake awaits."""

    def __init__(self, chains: dict[Signal, SignalChain]) -> None:
        self._chains = chains

    def apply(self, signal: Signal, payload: bytes, count: int) -> tuple[bytes, int]:
        chain = self._chains.get(signal)
        return (payload, count) if chain is None else chain.apply(payload, count)

    async def run(self, signal: Signal, payload: bytes, count: int) -> tuple[bytes, int]:
        """`apply`, on the worker thread for requests above THREAD_BYTES: their items may take the processors
        tens of milliseconds, and the event loop must keep serving other clients meanwhile (the GIL's
        switch interval hands it the interpreter every few milliseconds). It is the one worker thread of
        all per-item work (`inspection.off_loop`), so a request cancelled meanwhile stays counted until the
        worker is past it (see `pipeline.intake`)."""
        if signal not in self._chains:
            return payload, count
        if len(payload) <= THREAD_BYTES:
            return self.apply(signal, payload, count)
        return await inspection.off_loop(self.apply, signal, payload, count)


def build(p: spec.Processors, metrics: AgentMetrics) -> Chain | None:
    """The pipeline's processors, or None when none is configured (the intake's fast path)."""
    chains = {signal: SignalChain(signal, p, metrics) for signal in Signal}
    active = {signal: chain for signal, chain in chains.items() if chain.active}
    return Chain(active) if active else None
