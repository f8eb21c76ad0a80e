"""Conditions that select data for processors: a `Match` (all / any / not lists of leaf conditions) used by
filter rules and by attribute actions.

A leaf tests one thing: a resource attribute, the instrumentation scope's name, an item's attribute, a span's
name / kind / status, a log record's severity / body, a metric's name / type. There is no expression
language and no nesting beyond one `Match`: several filter rules are OR-ed, so any boolean combination can
be written as rules of `all` / `any` / `not` lists. Regexes are RE2 (see `otlp_agent.api.patterns`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from otlp_agent.api.spec.common import SpecModel

MAX_CONDITIONS = 16
MAX_VALUES = 64
MAX_PATTERN = 1024


class TextTest(SpecModel):
    """Exactly one of equals, in, regex (RE2, must match the whole text)."""

    equals: str | None = Field(default=None, max_length=4096, description="The text is exactly this.")
    in_: list[str] | None = Field(
        default=None, alias="in", max_length=MAX_VALUES, description="The text is one of these."
    )
    regex: str | None = Field(
        default=None, max_length=MAX_PATTERN, description="RE2 pattern that must match the whole text."
    )


class AttributeTest(SpecModel):
    """An attribute's value, compared as text (booleans true/false, numbers in decimal); exactly one of
    equals, in, regex, exists."""

    attribute: str = Field(min_length=1, max_length=256, description="Attribute key.")
    equals: str | None = Field(default=None, max_length=4096, description="The value is exactly this.")
    in_: list[str] | None = Field(
        default=None, alias="in", max_length=MAX_VALUES, description="The value is one of these."
    )
    regex: str | None = Field(
        default=None, max_length=MAX_PATTERN, description="RE2 pattern that must match the whole value."
    )
    exists: bool | None = Field(default=None, description="true: the key is present; false: it is absent.")


class SpanKind(StrEnum):
    unspecified = "unspecified"
    internal = "internal"
    server = "server"
    client = "client"
    producer = "producer"
    consumer = "consumer"


class StatusCode(StrEnum):
    unset = "unset"
    ok = "ok"
    error = "error"


class MetricType(StrEnum):
    gauge = "gauge"
    sum = "sum"
    histogram = "histogram"
    exponential_histogram = "exponentialHistogram"
    summary = "summary"


class Severity(StrEnum):
    """Log severities by name; each stands for the lowest severity number of its range (INFO = 9)."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class SeverityRange(SpecModel):
    """Log records by severity number: at least `atLeast` and below `below` (either or both). Records
    without a severity number (0) never satisfy it."""

    at_least: Severity | None = Field(default=None, description="Lowest severity included (e.g. WARN).")
    below: Severity | None = Field(default=None, description="First severity excluded (e.g. ERROR).")


class MatchCondition(SpecModel):
    """One test; set exactly one field."""

    resource: AttributeTest | None = Field(default=None, description="A resource attribute (any signal).")
    scope_name: TextTest | None = Field(
        default=None, description="The instrumentation scope's name (any signal)."
    )
    attribute: AttributeTest | None = Field(
        default=None,
        description="An attribute of the item: span, log record, or (metrics) data point.",
    )
    span_name: TextTest | None = Field(default=None, description="The span's name (traces).")
    span_kind: list[SpanKind] | None = Field(
        default=None, max_length=6, description="The span's kind is one of these (traces)."
    )
    span_status: list[StatusCode] | None = Field(
        default=None, max_length=3, description="The span's status code is one of these (traces)."
    )
    severity: SeverityRange | None = Field(default=None, description="The log record's severity (logs).")
    body: TextTest | None = Field(
        default=None, description="The log record's body, when it is a string (logs)."
    )
    metric_name: TextTest | None = Field(default=None, description="The metric's name (metrics).")
    metric_type: list[MetricType] | None = Field(
        default=None, max_length=5, description="The metric's type is one of these (metrics)."
    )


class Match(SpecModel):
    """Holds when every `all` condition holds, at least one `any` condition holds (if any are listed) and
    no `not` condition holds."""

    all: list[MatchCondition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="All hold."
    )
    any: list[MatchCondition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="At least one holds (if listed)."
    )
    not_: list[MatchCondition] = Field(
        default_factory=list, alias="not", max_length=MAX_CONDITIONS, description="None holds."
    )

    def conditions(self) -> list[tuple[str, int, MatchCondition]]:
        """(list name, index, condition) of every condition, for validation paths."""
        return [
            (name, index, condition)
            for name, conditions in (("all", self.all), ("any", self.any), ("not", self.not_))
            for index, condition in enumerate(conditions)
        ]
