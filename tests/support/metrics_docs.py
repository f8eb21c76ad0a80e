"""What the docs say the agent and the operator serve on /metrics, and what a /metrics text holds, as metric
family names (counters without `_total`, as the Prometheus parser names families). No tests live here."""

from __future__ import annotations

import pathlib
import re

from prometheus_client.parser import text_string_to_metric_families

ROOT = pathlib.Path(__file__).resolve().parents[2]
_NAME = re.compile(r"`((?:otelcol|otlp_agent|otlp_operator|process)_[a-z_]+)`")


def family(name: str) -> str:
    return name.removesuffix("_total")


def agent_documented() -> set[str]:
    """The families docs/agent.md's Self-telemetry section lists (first column of its tables, and the
    process and build-info paragraph; not the "replaces" column, which names what is gone)."""
    text = (ROOT / "docs" / "agent.md").read_text(encoding="utf-8")
    section = text.split("\n## Self-telemetry", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(_NAME.findall(line.split("|")[1]))
        elif line.startswith(("The process, as every", "`process_", "`otlp_agent_build_info")):
            names |= set(_NAME.findall(line))
    return {family(name) for name in names}


def operator_documented() -> set[str]:
    """The families of the operator metrics table in docs/operations.md (between its markers)."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = text.split("<!-- operator-metrics -->")[1].split("<!-- /operator-metrics -->")[0]
    return {
        family(name)
        for line in table.splitlines()
        if line.startswith("| `")
        for name in _NAME.findall(line.split("|")[1])
    }


def served(text: str, prefixes: tuple[str, ...]) -> set[str]:
    """The metric families a /metrics text holds whose names start with one of `prefixes`."""
    return {f.name for f in text_string_to_metric_families(text) if f.name.startswith(prefixes)}
