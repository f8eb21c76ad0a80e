"""The processors as a plain protobuf parse-modify-serialize: the reference the wire-level implementation
must agree with (tests/unit/test_processors_wire.py). Written from the docs, not from the agent's code:
full OTLP messages, Python loops, no caches, no lite schemas.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import re2
from opentelemetry.proto.common.v1 import common_pb2
from otlp_agent.api import spec
from otlp_agent.api.spec import Signal

ALL = frozenset(Signal)
ONLY = {
    "span_name": {Signal.traces},
    "span_kind": {Signal.traces},
    "span_status": {Signal.traces},
    "severity": {Signal.logs},
    "body": {Signal.logs},
    "metric_name": {Signal.metrics},
    "metric_type": {Signal.metrics},
}
SEVERITY = {name: 1 + 4 * i for i, name in enumerate(spec.Severity)}
KINDS = {k: i for i, k in enumerate(spec.SpanKind)}
CODES = {c: i for i, c in enumerate(spec.StatusCode)}
TYPES = {
    spec.MetricType.gauge: "gauge",
    spec.MetricType.sum: "sum",
    spec.MetricType.histogram: "histogram",
    spec.MetricType.exponential_histogram: "exponential_histogram",
    spec.MetricType.summary: "summary",
}


def leaf(condition: spec.MatchCondition) -> tuple[str, Any]:
    (name,) = [n for n in spec.MatchCondition.model_fields if getattr(condition, n) is not None]
    return name, getattr(condition, name)


def signals_of(listed: list[Signal] | None, match: spec.Match | None) -> frozenset[Signal]:
    if listed is not None:
        return frozenset(listed)
    found = set(ALL)
    for condition in (match.all + match.any + match.not_) if match else []:
        found &= ONLY.get(leaf(condition)[0], ALL)
    return frozenset(found)


def text(value: Any) -> str | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind))
    return None


def first(attributes: Any, key: str) -> Any:
    return next((kv.value for kv in attributes if kv.key == key), None)


def text_ok(test: Any, value: str | None) -> bool:
    if value is None:
        return False
    if test.equals is not None:
        return bool(value == test.equals)
    if test.in_ is not None:
        return value in test.in_
    return re2.fullmatch(test.regex.encode(), value.encode()) is not None


def attribute_ok(test: spec.AttributeTest, attributes: Any) -> bool:
    value = first(attributes, test.attribute)
    if test.exists is not None:
        return (value is not None) == test.exists
    return value is not None and text_ok(test, text(value))


class Ctx:
    def __init__(self, resource: Any, scope: Any = None, item: Any = None, point: Any = None) -> None:
        self.resource, self.scope, self.item, self.point = resource, scope, item, point


def condition_ok(condition: spec.MatchCondition, ctx: Ctx, signal: Signal) -> bool:
    name, test = leaf(condition)
    item = ctx.item
    if name == "resource":
        return attribute_ok(test, ctx.resource.attributes)
    if name == "scope_name":
        return text_ok(test, ctx.scope.name)
    if name == "attribute":
        return attribute_ok(test, (ctx.point if signal == Signal.metrics else item).attributes)
    if name in ("span_name", "metric_name"):
        return text_ok(test, item.name)
    if name == "span_kind":
        return item.kind in {KINDS[k] for k in test}
    if name == "span_status":
        return item.status.code in {CODES[c] for c in test}
    if name == "severity":
        low = SEVERITY[test.at_least] if test.at_least else 1
        high = SEVERITY[test.below] if test.below else 1 << 31
        return item.severity_number != 0 and low <= item.severity_number < high
    if name == "body":
        return item.body.WhichOneof("value") == "string_value" and text_ok(test, item.body.string_value)
    if name == "metric_type":
        return item.WhichOneof("data") in {TYPES[t] for t in test}
    raise AssertionError(name)


def match_ok(match: spec.Match, ctx: Ctx, signal: Signal) -> bool:
    return (
        all(condition_ok(c, ctx, signal) for c in match.all)
        and (not match.any or any(condition_ok(c, ctx, signal) for c in match.any))
        and not any(condition_ok(c, ctx, signal) for c in match.not_)
    )


def level(match: spec.Match, signal: Signal) -> int:
    levels = {"resource": 0, "scope_name": 1, "attribute": 3 if signal == Signal.metrics else 2}
    return max((levels.get(leaf(c)[0], 2) for c in match.all + match.any + match.not_), default=0)


def hash_input(value: Any) -> bytes:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value).encode()
    if kind == "bool_value":
        return b"\x01" if value.bool_value else b"\x00"
    if kind == "int_value":
        return struct.pack(">q", value.int_value)
    if kind == "double_value":
        return struct.pack(">d", value.double_value)
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    return bytes(value.SerializeToString())


def run_action(action: spec.AttributeAction, attributes: Any) -> int:
    """Apply one action to a repeated KeyValue field; returns values redacted."""
    selected = [
        i
        for i, kv in enumerate(attributes)
        if (kv.key == action.key if action.key is not None else re2.fullmatch(action.key_regex, kv.key))
    ]
    kind = action.action
    if kind in (
        spec.AttributeActionType.insert,
        spec.AttributeActionType.update,
        spec.AttributeActionType.upsert,
    ):
        if action.value is not None:
            value = common_pb2.AnyValue(string_value=action.value)
        else:
            value = first(attributes, action.from_attribute or "")
            if value is None:
                return 0
        if selected and kind != spec.AttributeActionType.insert:
            for i in selected:
                attributes[i].value.CopyFrom(value)
        elif not selected and kind != spec.AttributeActionType.update:
            attributes.add(key=action.key).value.CopyFrom(value)
        return 0
    if kind == spec.AttributeActionType.delete:
        for i in reversed(selected):
            del attributes[i]
        return 0
    redacted = 0
    for i in selected:
        value = attributes[i].value
        if kind == spec.AttributeActionType.hash:
            digest = hashlib.sha256(hash_input(value)).hexdigest()
            value.Clear()
            value.string_value = digest
        elif value.WhichOneof("value") == "string_value":
            new = re2.sub(action.regex or "", action.replacement, value.string_value)
            if new != value.string_value or re2.search(action.regex or "", value.string_value):
                value.string_value = new
                redacted += 1
    return redacted


def _sampled(sampling: spec.Sampling | None, signal: Signal, item: Any) -> bool:
    """Whether sampling keeps `item` (spans: tracestate updated in place). Written from the spec text."""
    if sampling is None or signal not in sampling.signals or sampling.ratio >= 1 or signal == Signal.metrics:
        return True
    # The spec's arithmetic (threshold rounding, th encoding) is tested against the spec's own table.
    from otlp_agent.pipeline.processors.sampling import MAX, decode, encode, threshold

    base = threshold(sampling.ratio, sampling.precision)
    tid = bytes(item.trace_id)
    if signal == Signal.logs:
        if len(tid) == 16 and any(tid):
            randomness = int.from_bytes(tid[9:], "big")
        else:
            record = item.SerializeToString(deterministic=True)
            seed = sampling.hash_seed.to_bytes(4, "big")
            randomness = int.from_bytes(hashlib.sha256(seed + record).digest()[:7], "big")
        return randomness >= base
    entries = [e.strip() for e in item.trace_state.split(",") if e.strip()]
    ot = next((e[3:] for e in entries if e.startswith("ot=")), None)
    members = [m.partition(":") for m in ot.split(";")] if ot else []
    values = {k: v for k, _, v in members if k}
    rv = values.get("rv")
    if rv is not None and len(rv) == 14 and all(c in "0123456789abcdef" for c in rv):
        randomness = int(rv, 16)
    elif len(tid) == 16 and any(tid):
        randomness = int.from_bytes(tid[9:], "big")
    else:
        return False
    incoming = decode(values["th"]) if "th" in values else None
    if incoming is not None and randomness < incoming:
        incoming = None
    if incoming is None:
        out = base
    elif sampling.mode == spec.SamplingMode.equalizing:
        out = max(incoming, base)
    else:
        out = max(threshold(sampling.ratio * (MAX - incoming) / MAX, sampling.precision), incoming)
    if randomness < out:
        return False
    kept = [f"th:{encode(out)}"] + [f"{k}:{v}" for k, _, v in members if k and k != "th"]
    others = [e for e in entries if not e.startswith("ot=")]
    item.trace_state = ",".join([f"ot={';'.join(kept)}", *others])
    return True


def _points(metric: Any) -> Any:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else []


def _size(signal: Signal, item: Any) -> int:
    return len(_points(item)) if signal == Signal.metrics else 1


def leaf_level(condition: spec.MatchCondition, signal: Signal) -> int:
    name = leaf(condition)[0]
    if name == "resource":
        return 0
    if name == "scope_name":
        return 1
    return 3 if name == "attribute" and signal == Signal.metrics else 2


def decide(match: spec.Match, ctx: Ctx, signal: Signal, known: int) -> bool | None:
    """Kleene logic over the leaves whose level is at most `known` (deeper ones are unknown)."""

    def value(c: spec.MatchCondition) -> bool | None:
        return condition_ok(c, ctx, signal) if leaf_level(c, signal) <= known else None

    alls = [value(c) for c in match.all]
    anys = [value(c) for c in match.any]
    nots = [value(c) for c in match.not_]
    if False in alls or (anys and all(v is False for v in anys)) or True in nots:
        return False
    if None in alls or (anys and True not in anys) or None in nots:
        return None
    return True


def _active(actions: list[spec.AttributeAction], ctx: Ctx, signal: Signal) -> list[spec.AttributeAction]:
    return [a for a in actions if a.match is None or match_ok(a.match, ctx, signal)]


def process(signal: Signal, message: Any, p: spec.Processors) -> tuple[Any, int, dict[str, int], int]:
    """(the processed request, items dropped, items dropped per filter rule, values redacted)."""
    rules = [r for r in (p.filter.rules if p.filter else []) if signal in signals_of(r.signals, r)]
    resource_actions = [
        a for a in (p.resource.actions if p.resource else []) if signal in signals_of(a.signals, a.match)
    ]
    actions = [
        a for a in (p.attributes.actions if p.attributes else []) if signal in signals_of(a.signals, a.match)
    ]
    names = {"traces": "spans", "logs": "logs", "metrics": "metrics"}[signal.value]
    container = getattr(message, f"resource_{names}")
    dropped, per_rule, redacted = 0, dict[str, int](), 0

    def first_rule(ctx: Ctx, known: int, only: int | None = None) -> spec.FilterRule | None:
        wanted = [r for r in rules if only is None or level(r, signal) == only]
        return next((r for r in wanted if decide(r, ctx, signal, known)), None)

    def drop(rule: str, n: int) -> None:
        nonlocal dropped
        dropped += n
        if n:
            per_rule[rule] = per_rule.get(rule, 0) + n

    for e in range(len(container) - 1, -1, -1):
        entry = container[e]
        arrived = Ctx(type(entry.resource).FromString(entry.resource.SerializeToString()))
        for action in _active(resource_actions, arrived, signal):
            redacted += run_action(action, entry.resource.attributes)
        scopes = getattr(entry, f"scope_{names}")
        had_scopes = len(scopes)
        whole = first_rule(Ctx(entry.resource), 0)
        if whole is not None:
            drop(whole.name, sum(_size(signal, i) for s in scopes for i in _items(signal, s)))
            del container[e]
            continue
        for s in range(len(scopes) - 1, -1, -1):
            scope = scopes[s]
            items = _items(signal, scope)
            had = len(items)
            gone = first_rule(Ctx(entry.resource, scope.scope), 1)
            if gone is not None:
                drop(gone.name, sum(_size(signal, i) for i in items))
                del scopes[s]
                continue
            for i in range(len(items) - 1, -1, -1):
                item = items[i]
                ctx = Ctx(entry.resource, scope.scope, item)
                gone = first_rule(ctx, 2)
                if gone is not None:
                    drop(gone.name, _size(signal, item))
                    del items[i]
                    continue
                if not _sampled(p.sampling, signal, item):
                    dropped += 1
                    del items[i]
                    continue
                if signal == Signal.metrics:
                    data = _points(item)
                    had_points = len(data)
                    for j in range(len(data) - 1, -1, -1):
                        gone = first_rule(Ctx(entry.resource, scope.scope, item, data[j]), 3, only=3)
                        if gone is not None:
                            drop(gone.name, 1)
                            del data[j]
                    if had_points and not len(data):
                        del items[i]
                        continue
                    for point in _points(item):
                        active = _active(actions, Ctx(entry.resource, scope.scope, item, point), signal)
                        for action in active:
                            redacted += run_action(action, point.attributes)
                    continue
                active = _active(actions, ctx, signal)
                for action in active:
                    redacted += run_action(action, item.attributes)
                if signal == Signal.traces:
                    for event in item.events:
                        for action in active:
                            redacted += run_action(action, event.attributes)
            if had and not len(items):
                del scopes[s]
        if had_scopes and not len(scopes):
            del container[e]
    return message, dropped, per_rule, redacted


def _items(signal: Signal, scope: Any) -> Any:
    return getattr(scope, {"traces": "spans", "logs": "log_records", "metrics": "metrics"}[signal.value])
