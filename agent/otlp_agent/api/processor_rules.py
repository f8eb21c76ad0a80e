"""Cross-field rules of the processors (`processors.resource`, `.attributes`, `.filter`, `.sampling`), each
problem with its field path relative to `spec`.

What is checked here and not by the models: which fields an action needs, RE2 patterns (compiled as the
agent will run them), conditions that set exactly one test, conditions that cannot apply to the signals
of their rule, actions that conflict with an earlier one, duplicate rule names.
"""

from __future__ import annotations

from collections.abc import Iterator

from otlp_agent.api import patterns, spec
from otlp_agent.api.problems import Problem
from otlp_agent.api.spec import Signal

ALL_SIGNALS = frozenset(Signal)
#: Which signals each leaf of a condition can apply to (the rest apply to every signal).
LEAF_SIGNALS: dict[str, frozenset[Signal]] = {
    "span_name": frozenset({Signal.traces}),
    "span_kind": frozenset({Signal.traces}),
    "span_status": frozenset({Signal.traces}),
    "severity": frozenset({Signal.logs}),
    "body": frozenset({Signal.logs}),
    "metric_name": frozenset({Signal.metrics}),
    "metric_type": frozenset({Signal.metrics}),
}
_Kind = spec.AttributeActionType
_SETS_VALUE = {_Kind.insert, _Kind.update, _Kind.upsert}
_SEVERITY_ORDER = list(spec.Severity)


def problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    p = s.processors
    if p.resource is not None:
        yield from _action_problems(p.resource, "processors.resource", resource_only=True)
    if p.attributes is not None:
        yield from _action_problems(p.attributes, "processors.attributes", resource_only=False)
    if p.filter is not None:
        yield from _filter_problems(p.filter, "processors.filter")
    if p.sampling is not None:
        yield from _sampling_problems(p.sampling, "processors.sampling")


def leaf_name(condition: spec.MatchCondition) -> str | None:
    """The one field a condition sets (None when it sets none or several)."""
    set_fields = [name for name in spec.MatchCondition.model_fields if getattr(condition, name) is not None]
    return set_fields[0] if len(set_fields) == 1 else None


def match_signals(match: spec.Match) -> frozenset[Signal]:
    """The signals every condition of `match` can apply to."""
    found = ALL_SIGNALS
    for _, _, condition in match.conditions():
        name = leaf_name(condition)
        if name is not None:
            found &= LEAF_SIGNALS.get(name, ALL_SIGNALS)
    return found


def effective_signals(listed: list[Signal] | None, match: spec.Match | None) -> frozenset[Signal]:
    """The signals a rule or action applies to: those listed, or every signal its match can apply to."""
    if listed is not None:
        return frozenset(listed)
    return match_signals(match) if match is not None else ALL_SIGNALS


def _alias(model: type[spec.SpecModel], field: str) -> str:
    return model.model_fields[field].alias or field


def _action_problems(
    processor: spec.AttributeProcessor, path: str, *, resource_only: bool
) -> Iterator[Problem]:
    for index, action in enumerate(processor.actions):
        at = f"{path}.actions[{index}]"
        yield from _one_action_problems(action, at)
        if action.match is not None:
            yield from _match_problems(action.match, f"{at}.match", resource_only=resource_only)
            yield from _scope_problems(action.signals, action.match, at, "action")
        if action.signals is not None and len(set(action.signals)) != len(action.signals):
            yield Problem(f"{at}.signals", "lists a signal twice")
    yield from _conflicts(processor, path)


def _one_action_problems(action: spec.AttributeAction, at: str) -> Iterator[Problem]:
    kind = action.action
    if (action.key is None) == (action.key_regex is None):
        yield Problem(at, "set exactly one of key, keyRegex")
    if kind in _SETS_VALUE:
        if action.key_regex is not None:
            yield Problem(f"{at}.keyRegex", f"{kind.value} needs a key, not a keyRegex")
        if (action.value is None) == (action.from_attribute is None):
            yield Problem(at, f"{kind.value} needs exactly one of value, fromAttribute")
        if action.from_attribute is not None and action.from_attribute == action.key:
            yield Problem(f"{at}.fromAttribute", "copies the attribute onto itself")
    else:
        for field in ("value", "from_attribute"):
            if getattr(action, field) is not None:
                alias = _alias(spec.AttributeAction, field)
                yield Problem(f"{at}.{alias}", "only for insert, update, upsert")
    if kind == spec.AttributeActionType.redact and action.regex is None:
        yield Problem(f"{at}.regex", "redact needs the regex of what to replace")
    if kind != spec.AttributeActionType.redact:
        for field in ("regex", "replacement"):
            if field in action.model_fields_set:
                yield Problem(f"{at}.{field}", "only for redact")
    for field in ("key_regex", "regex"):
        pattern = getattr(action, field)
        if pattern is not None and (reason := patterns.problem(pattern)):
            yield Problem(f"{at}.{_alias(spec.AttributeAction, field)}", reason)


def _conflicts(processor: spec.AttributeProcessor, path: str) -> Iterator[Problem]:
    """Actions that an earlier unconditional action on the same key and signals makes pointless."""
    deleted: dict[tuple[str, frozenset[Signal]], int] = {}
    assigned: dict[tuple[str, frozenset[Signal]], int] = {}
    for index, action in enumerate(processor.actions):
        if action.key is None or action.match is not None:
            continue
        where = (action.key, effective_signals(action.signals, None))
        at = f"{path}.actions[{index}]"
        if where in deleted:
            yield Problem(at, f"has no effect: actions[{deleted[where]}] deletes {action.key!r} first")
            continue
        if action.action == spec.AttributeActionType.delete:
            deleted[where] = index
        elif action.action in (spec.AttributeActionType.upsert, spec.AttributeActionType.update):
            if where in assigned:
                earlier = assigned[where]
                yield Problem(at, f"conflicts with actions[{earlier}], which also sets {action.key!r}")
            assigned.setdefault(where, index)


def _match_problems(match: spec.Match, path: str, *, resource_only: bool = False) -> Iterator[Problem]:
    for list_name, index, condition in match.conditions():
        at = f"{path}.{list_name}[{index}]"
        name = leaf_name(condition)
        if name is None:
            yield Problem(at, "set exactly one test (resource, scopeName, attribute, spanName, ...)")
            continue
        alias = _alias(spec.MatchCondition, name)
        if resource_only and name != "resource":
            yield Problem(f"{at}.{alias}", "resource actions can only match resource attributes")
        yield from _leaf_problems(getattr(condition, name), f"{at}.{alias}")


def _leaf_problems(leaf: object, at: str) -> Iterator[Problem]:
    if isinstance(leaf, spec.AttributeTest | spec.TextTest):
        tests = [n for n in ("equals", "in_", "regex", "exists") if getattr(leaf, n, None) is not None]
        if len(tests) != 1:
            names = "equals, in, regex" + (", exists" if isinstance(leaf, spec.AttributeTest) else "")
            yield Problem(at, f"set exactly one of {names}")
        if leaf.in_ is not None and not leaf.in_:
            yield Problem(f"{at}.in", "list at least one value (an empty list never matches)")
        if leaf.regex is not None and (reason := patterns.problem(leaf.regex)):
            yield Problem(f"{at}.regex", reason)
    elif isinstance(leaf, spec.SeverityRange):
        if leaf.at_least is None and leaf.below is None:
            yield Problem(at, "set atLeast, below, or both")
        elif (
            leaf.at_least is not None
            and leaf.below is not None
            and _SEVERITY_ORDER.index(leaf.at_least) >= _SEVERITY_ORDER.index(leaf.below)
        ):
            yield Problem(at, "atLeast must be a lower severity than below (nothing would match)")
    elif isinstance(leaf, list):
        if not leaf:
            yield Problem(at, "list at least one value (an empty list never matches)")
        elif len(set(leaf)) != len(leaf):
            yield Problem(at, "lists a value twice")


def _scope_problems(listed: list[Signal] | None, match: spec.Match, at: str, what: str) -> Iterator[Problem]:
    """Conditions that cannot apply to the signals of their rule or action."""
    if listed is None:
        if not match_signals(match):
            yield Problem(at, "no signal has everything its conditions test (e.g. span name and severity)")
        return
    for list_name, index, condition in match.conditions():
        name = leaf_name(condition)
        if name is None:
            continue
        foreign = [s.value for s in listed if s not in LEAF_SIGNALS.get(name, ALL_SIGNALS)]
        if foreign:
            only = ", ".join(sorted(s.value for s in LEAF_SIGNALS[name]))
            yield Problem(
                f"{at}.{list_name}[{index}].{_alias(spec.MatchCondition, name)}"
                if what == "rule"
                else f"{at}.match.{list_name}[{index}].{_alias(spec.MatchCondition, name)}",
                f"applies only to {only}, but the {what} is for {', '.join(foreign)}: narrow its signals",
            )


def _filter_problems(f: spec.Filter, path: str) -> Iterator[Problem]:
    names: dict[str, int] = {}
    for index, rule in enumerate(f.rules):
        at = f"{path}.rules[{index}]"
        if rule.name in names:
            yield Problem(f"{at}.name", f"duplicate rule name {rule.name!r} (also rules[{names[rule.name]}])")
        names.setdefault(rule.name, index)
        if not rule.conditions():
            yield Problem(at, "list at least one condition in all, any or not (without, it would drop all)")
        yield from _match_problems(rule, at)
        yield from _scope_problems(rule.signals, rule, at, "rule")
        if rule.signals is not None and len(set(rule.signals)) != len(rule.signals):
            yield Problem(f"{at}.signals", "lists a signal twice")


def _sampling_problems(sampling: spec.Sampling, path: str) -> Iterator[Problem]:
    if Signal.metrics in sampling.signals:
        yield Problem(f"{path}.signals", "metrics cannot be sampled (only traces and logs)")
    if len(set(sampling.signals)) != len(sampling.signals):
        yield Problem(f"{path}.signals", "lists a signal twice")
    if 0 < sampling.ratio < 2.0**-56:
        yield Problem(f"{path}.ratio", "the smallest ratio above 0 is 2^-56")
