"""Routing rules: which exporters get which resources, matched on resource attributes."""

from __future__ import annotations

from pydantic import Field

from otlp_agent.api.spec.common import DnsLabel, Signal, SpecModel


class AttributeMatch(SpecModel):
    """A test on one resource attribute; set exactly one of equals, in, regex, exists."""

    attribute: str = Field(min_length=1, max_length=256, description="Resource attribute key.")
    equals: str | None = Field(default=None, description="Value equals this.")
    in_: list[str] | None = Field(default=None, alias="in", description="Value is one of these.")
    regex: str | None = Field(
        default=None, max_length=1024, description="Value fully matches this regular expression (Python re)."
    )
    exists: bool | None = Field(default=None, description="Attribute is present (true) or absent (false).")


class RouteRule(SpecModel):
    """Send matching data to these exporters; the first matching rule wins."""

    name: DnsLabel = Field(description="Name, used in metrics.")
    signals: list[Signal] = Field(default_factory=lambda: list(Signal), min_length=1, description="Signals.")
    tenants: list[DnsLabel] = Field(
        default_factory=list,
        max_length=64,
        description="Only for requests whose client authenticated as one of these tenants (receivers' "
        "auth.tenants): what a client cannot fake. Empty: any request.",
    )
    match: list[AttributeMatch] = Field(default_factory=list, max_length=16, description="All must hold.")
    exporters: list[DnsLabel] = Field(min_length=1, description="Exporter names.")


class Routes(SpecModel):
    """Ordered routing rules; data no rule matches goes to the default exporters."""

    rules: list[RouteRule] = Field(default_factory=list, max_length=64, description="Checked in order.")
    default: list[DnsLabel] = Field(
        default_factory=list,
        description="Exporters for data no rule takes; empty: that data is counted as unrouted and reported "
        "to clients as partial success.",
    )
