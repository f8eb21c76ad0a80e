"""Compiled conditions (`spec.Match`): tests at four levels, decided as early as the data allows.

Each leaf belongs to a level: 0 the resource, 1 the instrumentation scope, 2 the item (span, log record,
metric), 3 a metric's data point (an `attribute` test on metrics). A match is first evaluated with what a
resource entry tells (three-valued: true, false, or "needs a deeper look"), then per scope, then per item:
an entry whose resource already decides a rule is never parsed for it. Values are compared as text
(UTF-8 bytes, see `kv.text`); regexes are RE2 (`otlp_agent.api.patterns`), full matches, with decisions on
short texts cached.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2

from otlp_agent.api import patterns, processor_rules, spec
from otlp_agent.api.spec import Signal
from otlp_agent.pipeline.processors import kv

RESOURCE, SCOPE, ITEM, POINT = 0, 1, 2, 3
#: Regex decisions remembered per test (texts up to CACHEABLE_TEXT bytes); the cache starts over when full.
CACHE_SIZE = 4096
CACHEABLE_TEXT = 256

_KINDS = {kind: index for index, kind in enumerate(spec.SpanKind)}
_CODES = {code: index for index, code in enumerate(spec.StatusCode)}
_SEVERITY = {name: 1 + 4 * index for index, name in enumerate(spec.Severity)}
_METRIC_TYPES = {
    spec.MetricType.gauge: "gauge",
    spec.MetricType.sum: "sum",
    spec.MetricType.histogram: "histogram",
    spec.MetricType.exponential_histogram: "exponential_histogram",
    spec.MetricType.summary: "summary",
}


class Context:
    """What a condition can look at: resource attributes (key -> serialized AnyValue), the scope (lite
    message), the item, and for metrics the data point."""

    __slots__ = ("item", "point", "resource", "scope")

    def __init__(self, resource: dict[bytes, bytes]) -> None:
        self.resource = resource
        self.scope: Any = None
        self.item: Any = None
        self.point: Any = None


Test = Callable[[Context], bool]
Leaf = tuple[int, Test]


def lookup(blobs: Any, key: bytes) -> bytes | None:
    """The serialized value of attribute `key` among serialized KeyValues (None when absent).

    The key's bytes are searched in the join of the KeyValues (C); a KeyValue whose bytes do not contain
    them cannot hold the key, so only those where they occur are read."""
    listed = list(blobs)
    joined = b"".join(listed)
    at = joined.find(key)
    if at < 0:
        return None
    ends = list(itertools.accumulate(map(len, listed)))
    while at >= 0:
        i = bisect.bisect_right(ends, at)
        found, value = kv.split(listed[i])
        if found == key:
            return value
        at = joined.find(key, ends[i])
    return None


def attribute_map(blobs: Any) -> dict[bytes, bytes]:
    """key -> serialized value of serialized KeyValues (the first of duplicate keys)."""
    found: dict[bytes, bytes] = {}
    for blob in blobs:
        key, value = kv.split(blob)
        found.setdefault(key, value)
    return found


class TextMatcher:
    """One TextTest or the value part of an AttributeTest, on UTF-8 bytes."""

    def __init__(self, test: spec.TextTest | spec.AttributeTest) -> None:
        self.equals = test.equals.encode() if test.equals is not None else None
        self.values = frozenset(v.encode() for v in test.in_) if test.in_ is not None else None
        self.pattern = patterns.compile_pattern(test.regex or "")
        self._cache: dict[bytes, bool] = {}

    def fast(self) -> Callable[[bytes], bool]:
        """The test for a text that is never None, as a C method where the test allows (no Python frame
        per call: it runs once per item)."""
        if self.equals is not None:
            return self.equals.__eq__
        if self.values is not None:
            return self.values.__contains__
        return self._regex

    def __call__(self, text: bytes | None) -> bool:
        if text is None:
            return False
        if self.equals is not None:
            return text == self.equals
        if self.values is not None:
            return text in self.values
        return self._regex(text)

    def _regex(self, text: bytes) -> bool:
        decided = self._cache.get(text)
        if decided is None:
            decided = patterns.fullmatch(self.pattern, text)
            if len(text) <= CACHEABLE_TEXT:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[text] = decided
        return decided


def _attribute_test(test: spec.AttributeTest, values_of: Callable[[Context], Any], resource: bool) -> Test:
    key = test.attribute.encode()
    if test.exists is not None:
        wanted = test.exists
        if resource:
            return lambda ctx: (key in ctx.resource) == wanted
        return lambda ctx: (lookup(values_of(ctx), key) is not None) == wanted
    matches = TextMatcher(test)
    if resource:
        return lambda ctx: key in ctx.resource and matches(kv.text(ctx.resource[key]))

    def item_test(ctx: Context) -> bool:
        value = lookup(values_of(ctx), key)
        return value is not None and matches(kv.text(value))

    return item_test


_SCOPE_NAMES: dict[bytes, bytes] = {}


def scope_name(scope: Any) -> bytes:
    """The name of an instrumentation scope (lite message), cached per distinct scope."""
    raw = scope.SerializeToString()
    name = _SCOPE_NAMES.get(raw)
    if name is None:
        name = common_pb2.InstrumentationScope.FromString(raw).name.encode()
        if len(raw) <= CACHEABLE_TEXT:
            if len(_SCOPE_NAMES) >= CACHE_SIZE:
                _SCOPE_NAMES.clear()
            _SCOPE_NAMES[raw] = name
    return name


def _severity_test(severity: spec.SeverityRange) -> Test:
    low = _SEVERITY[severity.at_least] if severity.at_least is not None else 1
    high = _SEVERITY[severity.below] if severity.below is not None else 1 << 31
    return lambda ctx: ctx.item.severity_number != 0 and low <= ctx.item.severity_number < high


def _body_test(test: spec.TextTest) -> Test:
    matches = TextMatcher(test)
    return lambda ctx: matches(kv.string_of(ctx.item.body.SerializeToString()))


def compile_leaf(condition: spec.MatchCondition, signal: Signal) -> Leaf:
    """The level and test of one condition, for one signal."""
    name = processor_rules.leaf_name(condition)
    leaf = getattr(condition, name or "")
    if name == "resource":
        return RESOURCE, _attribute_test(leaf, lambda ctx: None, resource=True)
    if name == "scope_name":
        matches = TextMatcher(leaf)
        return SCOPE, lambda ctx: matches(scope_name(ctx.scope))
    if name == "attribute":
        if signal == Signal.metrics:
            return POINT, _attribute_test(leaf, lambda ctx: ctx.point.attributes, resource=False)
        return ITEM, _attribute_test(leaf, lambda ctx: ctx.item.attributes, resource=False)
    if name in ("span_name", "metric_name"):
        name_matches = TextMatcher(leaf).fast()
        return ITEM, lambda ctx: name_matches(ctx.item.name.encode())
    if name == "span_kind":
        kinds = frozenset(_KINDS[kind] for kind in leaf)
        return ITEM, lambda ctx: ctx.item.kind in kinds
    if name == "span_status":
        codes = frozenset(_CODES[code] for code in leaf)
        return ITEM, lambda ctx: ctx.item.status.code in codes
    if name == "severity":
        return ITEM, _severity_test(leaf)
    if name == "body":
        return ITEM, _body_test(leaf)
    if name == "metric_type":
        types = frozenset(_METRIC_TYPES[t] for t in leaf)
        return ITEM, lambda ctx: ctx.item.WhichOneof("data") in types
    raise ValueError(f"condition sets no single test: {condition!r}")


class CompiledMatch:
    """A `spec.Match` for one signal: `level` is the deepest level it looks at."""

    def __init__(self, match: spec.Match, signal: Signal) -> None:
        self.all = [compile_leaf(c, signal) for c in match.all]
        self.any = [compile_leaf(c, signal) for c in match.any]
        self.none = [compile_leaf(c, signal) for c in match.not_]
        self.level = max((level for level, _ in self.all + self.any + self.none), default=RESOURCE)

    def holds(self, ctx: Context) -> bool:
        """The decision, with every level of `ctx` filled in (plain loops: this runs once per item)."""
        for _, test in self.all:
            if not test(ctx):
                return False
        if self.any:
            for _, test in self.any:
                if test(ctx):
                    break
            else:
                return False
        return not any(test(ctx) for _, test in self.none) if self.none else True

    def at(self, ctx: Context, level: int) -> bool | None:
        """The decision knowing only levels up to `level` of `ctx`; None when deeper levels decide."""
        if level >= self.level:
            return self.holds(ctx)
        verdicts = [_known(leaf, ctx, level) for leaf in self.all]
        if False in verdicts:
            return False
        unknown = None in verdicts
        if self.any:
            some = [_known(leaf, ctx, level) for leaf in self.any]
            if True not in some:
                if None not in some:
                    return False
                unknown = True
        for leaf in self.none:
            verdict = _known(leaf, ctx, level)
            if verdict:
                return False
            unknown = unknown or verdict is None
        return None if unknown else True


def _known(leaf: Leaf, ctx: Context, level: int) -> bool | None:
    return leaf[1](ctx) if leaf[0] <= level else None
