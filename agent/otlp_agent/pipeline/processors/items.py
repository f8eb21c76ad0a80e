"""Inside one resource entry (a lite message, see `lite`): filter rules the resource could not decide,
sampling, and attribute actions, scope by scope and item by item, in that order.

Items are spans, log records and metrics; metrics count (and filter rules at the data-point level drop)
data points. A scope or metric left with nothing by this walk is removed, as is an entry left without
scopes; containers that arrived empty are left as they were.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.proto.logs.v1 import logs_pb2

from otlp_agent.api.spec import Signal
from otlp_agent.pipeline.processors import conditions
from otlp_agent.pipeline.processors.attributes import ActionList
from otlp_agent.pipeline.processors.sampling import LogSampler, TraceSampler


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    match: conditions.CompiledMatch


@dataclasses.dataclass
class Tally:
    """What one request's processing did, flushed to metrics once per request."""

    filtered: dict[str, int] = dataclasses.field(default_factory=dict)
    redacted: dict[tuple[str, int], int] = dataclasses.field(default_factory=dict)  # resource actions
    attribute_redactions: dict[int, int] = dataclasses.field(default_factory=dict)
    kept: int = 0
    sampled_out: int = 0
    no_randomness: int = 0

    def drop(self, rule: str, items: int) -> None:
        if items:
            self.filtered[rule] = self.filtered.get(rule, 0) + items


@dataclasses.dataclass(frozen=True)
class Work:
    """What an entry needs inside: undecided rules, a sampler, attribute actions (each may be absent)."""

    rules: list[Rule]
    traces: TraceSampler | None
    logs: LogSampler | None
    actions: ActionList | None


def points(metric: Any) -> Any:
    """A lite metric's data points (an empty tuple when it has no data)."""
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def size(signal: Signal, item: Any) -> int:
    return len(points(item)) if signal == Signal.metrics else 1


def walk(signal: Signal, entry: Any, ctx: conditions.Context, work: Work, tally: Tally) -> tuple[int, bool]:
    """Process a lite entry in place; returns (items dropped, whether the entry is now empty)."""
    dropped = 0
    scopes = entry.scopes
    had_scopes = len(scopes)
    for index in range(len(scopes) - 1, -1, -1):
        scope = scopes[index]
        ctx.scope = scope.scope
        items = scope.items
        had = len(items)
        rules = _open_rules(work.rules, ctx, conditions.SCOPE)
        if isinstance(rules, Rule):
            gone = sum(size(signal, item) for item in items)
            tally.drop(rules.name, gone)
            dropped += gone
            del scopes[index]
            continue
        dropped += _items(signal, items, ctx, dataclasses.replace(work, rules=rules), tally)
        if had and not len(items):
            del scopes[index]
    return dropped, bool(had_scopes and not len(scopes))


def _open_rules(rules: list[Rule], ctx: conditions.Context, level: int) -> Rule | list[Rule]:
    """The first rule that holds at `level` (everything below it is dropped), or those still undecided."""
    undecided = []
    for rule in rules:
        verdict = rule.match.at(ctx, level)
        if verdict:
            return rule
        if verdict is None:
            undecided.append(rule)
    return undecided


def _items(signal: Signal, items: Any, ctx: conditions.Context, work: Work, tally: Tally) -> int:
    if work.actions is not None and not (work.rules or work.traces or work.logs):
        _rewrite_all(signal, items, ctx, work.actions, tally.attribute_redactions)
        return 0
    if work.traces is not None and work.actions is None and not work.rules:
        return _sample_spans(items, work.traces, tally)
    dropped = 0
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        ctx.item = item
        removed = _filtered(signal, item, ctx, work.rules, tally)
        if removed is None and _sampled_out(signal, item, work, tally):
            removed = 1
        if removed is not None:
            dropped += removed
            del items[index]
            continue
        if signal == Signal.metrics and work.rules:
            had = len(points(item))
            dropped += _filter_points(item, ctx, work.rules, tally)
            if had and not len(points(item)):
                del items[index]
                continue
        if work.actions is not None:
            _rewrite(signal, item, ctx, work.actions, tally.attribute_redactions)
    return dropped


def _filtered(
    signal: Signal, item: Any, ctx: conditions.Context, rules: list[Rule], tally: Tally
) -> int | None:
    """The items `item` stands for if a rule drops it whole (a metric without points: 0), else None."""
    for rule in rules:
        match = rule.match
        if match.holds(ctx) if match.level <= conditions.ITEM else match.at(ctx, conditions.ITEM):
            gone = size(signal, item)
            tally.drop(rule.name, gone)
            return gone
    return None


def _filter_points(metric: Any, ctx: conditions.Context, rules: list[Rule], tally: Tally) -> int:
    """Drop the data points a point-level rule holds for; returns how many."""
    deep = [rule for rule in rules if rule.match.level == conditions.POINT]
    data = points(metric)
    dropped = 0
    for index in range(len(data) - 1, -1, -1):
        ctx.point = data[index]
        for rule in deep:
            if rule.match.holds(ctx):
                tally.drop(rule.name, 1)
                dropped += 1
                del data[index]
                break
    return dropped


def _sample_spans(spans: Any, sampler: TraceSampler, tally: Tally) -> int:
    """Trace sampling alone (the common case): one loop, no per-span filter or signal dispatch."""
    dropped = 0
    for index in range(len(spans) - 1, -1, -1):
        if not _keeps_span(spans[index], sampler, tally):
            dropped += 1
            del spans[index]
    return dropped


def _keeps_span(span: Any, sampler: TraceSampler, tally: Tally) -> bool:
    """Decide `span`, count the decision and write its tracestate when kept."""
    kept, state = sampler.decide(span.trace_id, span.trace_state)
    if kept is None:
        tally.no_randomness += 1
        return False
    if not kept:
        tally.sampled_out += 1
        return False
    tally.kept += 1
    if state is not None and state != span.trace_state:
        span.trace_state = state
    return True


def _sampled_out(signal: Signal, item: Any, work: Work, tally: Tally) -> bool:
    if work.traces is not None:
        return not _keeps_span(item, work.traces, tally)
    if work.logs is not None:
        record = b"" if len(item.trace_id) == 16 and any(item.trace_id) else _canonical(item)
        if not work.logs.keeps(item.trace_id, record):
            tally.sampled_out += 1
            return True
        tally.kept += 1
    return False


def _canonical(record: Any) -> bytes:
    """A log record's canonical serialization (fields in number order, as SDKs write them)."""
    canonical: bytes = logs_pb2.LogRecord.FromString(record.SerializeToString()).SerializeToString(
        deterministic=True
    )
    return canonical


def _rewrite_all(
    signal: Signal, items: Any, ctx: conditions.Context, actions: ActionList, redacted: dict[int, int]
) -> None:
    """Attribute actions alone (the common case): one loop, no per-item filter or sampling calls."""
    if signal == Signal.metrics or actions.matched:
        for item in items:
            ctx.item = item
            _rewrite(signal, item, ctx, actions, redacted)
        return
    apply, every = actions.apply, actions.actions
    for item in items:
        apply(item.attributes, every, redacted)
        if signal == Signal.traces:
            for event in item.events:
                apply(event.attributes, every, redacted)


def _rewrite(
    signal: Signal, item: Any, ctx: conditions.Context, actions: ActionList, redacted: dict[int, int]
) -> None:
    """Matches are decided on the item as it arrived, before any action changes it."""
    if signal == Signal.metrics:
        for point in points(item):
            ctx.point = point
            actions.apply(point.attributes, actions.active(ctx), redacted)
        return
    active = actions.active(ctx)
    actions.apply(item.attributes, active, redacted)
    if signal == Signal.traces:
        for event in item.events:
            actions.apply(event.attributes, active, redacted)
