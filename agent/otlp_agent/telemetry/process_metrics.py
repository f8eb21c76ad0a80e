"""What the agent's process costs and what it is: prometheus_client's `process_*` (CPU, resident memory,
open and maximum file descriptors, start time), the same under the collector's names
(`otelcol_process_cpu_seconds_total`, `otelcol_process_memory_rss_bytes`,
`otelcol_process_uptime_seconds_total`, read from the same place at scrape time), and
`otlp_agent_build_info{version, python}` = 1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import prometheus_client as prom
from prometheus_client import core as prom_core
from prometheus_client import registry as prom_registry

from otlp_agent.telemetry import build


class _CollectorProcessNames(prom_registry.Collector):
    """The process collector's readings under the collector's names (nothing on a system without /proc)."""

    def __init__(self, source: prom.ProcessCollector) -> None:
        self._source = source

    def collect(self) -> Iterator[prom_core.Metric]:
        found = {s.name: s.value for family in self._source.collect() for s in family.samples}
        cpu = prom_core.CounterMetricFamily(
            "otelcol_process_cpu_seconds", "Total CPU user and system time in seconds."
        )
        rss = prom_core.GaugeMetricFamily("otelcol_process_memory_rss_bytes", "Total physical memory (RSS).")
        uptime = prom_core.CounterMetricFamily("otelcol_process_uptime_seconds", "Uptime of the process.")
        if "process_cpu_seconds_total" in found:
            cpu.add_metric([], found["process_cpu_seconds_total"])
        if "process_resident_memory_bytes" in found:
            rss.add_metric([], found["process_resident_memory_bytes"])
        if "process_start_time_seconds" in found:
            uptime.add_metric([], max(0.0, time.time() - found["process_start_time_seconds"]))
        yield from (cpu, rss, uptime)


def register(registry: prom.CollectorRegistry) -> None:
    """Add the process and build metrics to `registry`."""
    prom.ProcessCollector(registry=registry)
    registry.register(_CollectorProcessNames(prom.ProcessCollector(registry=None)))
    info = prom.Gauge(
        "otlp_agent_build_info",
        "1, labelled with the agent's version.",
        ["version", "python"],
        registry=registry,
    )
    info.labels(build.VERSION, build.PYTHON).set(1)
