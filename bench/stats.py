"""Aggregation: many runs → per scenario, per system medians with spread, ratios to rotel, target verdicts.

Pure functions over the run dicts `runner.run_once` returns, so they are tested without running anything.
The median is the headline; the spread (min, max, and (max - min) / median) says how far to trust it.
Ratios are agent / rotel of the medians, except `spans_per_cpu_s`, which is the efficiency ratio the
head-to-head target is about (higher is better for us).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench import scenarios

HEADLINE = ("spans_per_s", "cpu_s_per_million_spans", "peak_rss_mib", "wire_bytes_per_span")
EXTRA = (
    "spans_per_cpu_s",
    "cpu_util",
    "client_side_cpu_util",
    "compression_ratio",
    "mean_export_spans",
    "answered_requests_per_s",
    "cpu_us_per_request",
    "cpu_s_per_million_received",
    "delivered_fraction",
)
COUNTS = ("accepted", "accepted_spans", "retryable", "retryable_spans", "retry_hint", "non_retryable")
TARGET_EFFICIENCY_RATIO = 1.5
TARGET_ZSTD_SPANS_PER_S = 250_000
CLIENT_BOUND_UTIL = 0.9  # the client side used ≥ 90% of its core
SATURATED_UTIL = 0.8  # below this the system had CPU to spare
FOREIGN_LOAD_UTIL = 0.1  # other people's load on the system's CPU worth a warning
# Processor scenarios: CPU per span received, as a multiple of the same system without processors.
PROCESSOR_GOALS = {"resource": 1.10, "attributes": 3.0, "filter": 3.0}


def median_run(runs: list[dict[str, Any]], by: str) -> dict[str, Any]:
    """The run in the middle of `runs` ordered by the figure `by` (None counts as 0): one real run, whose
    figures belong together, as the studies report it."""
    return sorted(runs, key=lambda run: run[by] or 0)[len(runs) // 2]


def spread(values: list[float]) -> dict[str, float | int | None]:
    """Median, min, max and relative spread of the values that are not None."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "rel_spread": None, "n": 0}
    median = statistics.median(present)
    rel = (max(present) - min(present)) / median if median else None
    return {"median": median, "min": min(present), "max": max(present), "rel_spread": rel, "n": len(present)}


def summarize_system(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system in one scenario: medians on top, spread beside them, overload counts summed."""
    summary: dict[str, Any] = {"runs": len(runs), "spread": {}}
    for key in HEADLINE + EXTRA:
        stats = spread([run.get(key) for run in runs])
        summary[key] = stats["median"]
        summary["spread"][key] = stats
    summary["crashes"] = sum(1 for run in runs if run.get("crashed"))
    summary["unclean_exits"] = sum(1 for run in runs if run.get("exit_code") not in (0, None))
    client: dict[str, int] = {}
    codes: dict[str, int] = {}
    for run in runs:
        for key, value in run.get("client_total", {}).items():
            client[key] = client.get(key, 0) + value
        for key, value in run.get("status_counts", {}).items():
            codes[key] = codes.get(key, 0) + value
    summary["client"] = client
    summary["status_counts"] = codes
    summary["refused_items_metric"] = [run.get("refused_items_metric") for run in runs]
    summary["accepted_not_delivered_spans"] = sum(
        run.get("accepted_not_delivered_spans") or 0 for run in runs
    )
    foreign = [run["foreign_cpu_util"]["system_cpu"] for run in runs if run.get("foreign_cpu_util")]
    summary["foreign_load_on_system_cpu"] = max(foreign) if foreign else None
    summary["agent_counters"] = agent_counters(runs)
    hostile = [run["hostile"] for run in runs if run.get("hostile")]
    if hostile:
        summary["hostile"] = {
            key: spread([h.get(key) for h in hostile])
            for key in ("probe_p50_ms", "probe_p99_ms", "probe_max_ms", "probe_requests")
        }
        answers: dict[str, int] = {}
        for h in hostile:
            for label, n in h["flood_answers"].items():
                answers[label] = answers.get(label, 0) + n
        summary["hostile"]["flood_answers"] = answers
    return summary


_ITEMS = ("spans", "metric_points", "log_records")
#: The agent's item counters (each the sum of these metrics: the collector's are split by signal).
AGENT_COUNTERS = {
    "received": tuple(f"otelcol_receiver_accepted_{items}_total" for items in _ITEMS),
    "exported": tuple(f"otelcol_exporter_sent_{items}_total" for items in _ITEMS),
    "refused": ("otlp_agent_refused_items_total",),
    "dropped": ("otlp_agent_dropped_items_total",),
}


def agent_counters(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The agent's own item counters, summed over runs, drops split by reason (None for rotel)."""
    metrics = [run["agent_metrics"] for run in runs if run.get("agent_metrics")]
    if not metrics:
        return None
    out: dict[str, Any] = {}
    for label, names in AGENT_COUNTERS.items():
        out[label] = sum(_sum(m, name) for m in metrics for name in names)
    reasons: dict[str, float] = {}
    for m in metrics:
        for series, value in m.items():
            if series.startswith(AGENT_COUNTERS["dropped"][0] + "{") and 'reason="' in series:
                reason = series.split('reason="', 1)[1].split('"', 1)[0]
                reasons[reason] = reasons.get(reason, 0) + value
    out["dropped_by_reason"] = reasons
    return out


def _sum(samples: dict[str, float], name: str) -> float:
    return sum(v for series, v in samples.items() if series == name or series.startswith(name + "{"))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def ratios(agent: dict[str, Any], rotel: dict[str, Any]) -> dict[str, float | None]:
    return {key: ratio(agent.get(key), rotel.get(key)) for key in (*HEADLINE, "spans_per_cpu_s")}


def summarize(runs: list[dict[str, Any]], scenarios: list[Any]) -> dict[str, Any]:
    """Every scenario that has runs, keyed by scenario key."""
    out: dict[str, Any] = {}
    for scenario in scenarios:
        mine = [run for run in runs if run["scenario"] == scenario.key]
        if not mine:
            continue
        systems = {
            name: summarize_system([r for r in mine if r["system"] == name]) for name in scenario.systems
        }
        systems = {name: summary for name, summary in systems.items() if summary["runs"]}
        entry: dict[str, Any] = {"title": scenario.title, "systems": systems, "ratios": None}
        if "agent" in systems and "rotel" in systems:
            entry["ratios"] = ratios(systems["agent"], systems["rotel"])
        if scenario.hostile:
            entry["hostile"] = {"memory_limit_mib": scenario.memory_limit_mib}
        if scenario.tenants:
            entry["tenants"] = scenario.tenants
        if scenario.overload:
            entry["overload"] = {
                "sink_spans_per_s": scenario.sink_spans_per_s,
                "offered_factor": scenario.offered_factor,
                "memory_limit_mib": scenario.memory_limit_mib,
                "spike_limit_mib": scenario.spike_limit_mib,
            }
        out[scenario.key] = entry
    return out


def findings(summary: dict[str, Any]) -> list[str]:
    """Things a reader must know before trusting a row: saturation, lost data, unclean exits."""
    notes = []
    for key, entry in summary.items():
        overload = "overload" in entry
        for name, s in entry["systems"].items():
            client = s["client"]
            answered = sum(client.get(kind, 0) for kind in ("accepted", "retryable", "non_retryable"))
            if client.get("sent") and not answered:
                notes.append(
                    f"{key}/{name}: answered none of the {client['sent']:,} requests sent "
                    f"({client.get('transport_errors', 0):,} transport errors): this row measures nothing."
                )
            accepted = client.get("accepted_spans", 0)
            lost = s["accepted_not_delivered_spans"]
            if accepted and lost > 0.001 * accepted and key in scenarios.DROPPING:
                notes.append(
                    f"{key}/{name}: {lost:,} of {accepted:,} spans the client saw accepted were dropped by "
                    f"the processor, as configured ({lost / accepted:.0%} did not reach the sink)."
                )
            elif accepted and lost > 0.001 * accepted:
                notes.append(
                    f"{key}/{name}: {lost:,} of {accepted:,} spans the client saw accepted never reached the "
                    f"sink ({lost / accepted:.0%}) — dropped, or still queued when the run stopped it."
                )
            if (s["client_side_cpu_util"] or 0) >= CLIENT_BOUND_UTIL:
                notes.append(f"{key}/{name}: the client core was saturated; spans/s is a lower bound.")
            if not overload and s["cpu_util"] is not None and s["cpu_util"] < SATURATED_UTIL:
                notes.append(
                    f"{key}/{name}: used {s['cpu_util']:.0%} of its core, so throughput was limited by "
                    "something else (client, latency, the machine's other load); compare CPU per span."
                )
            foreign = s.get("foreign_load_on_system_cpu")
            if foreign is not None and foreign > FOREIGN_LOAD_UTIL:
                notes.append(
                    f"{key}/{name}: other processes kept its CPU up to {foreign:.0%} busy during a window; "
                    "its numbers are depressed by that."
                )
            counters = s.get("agent_counters") or {}
            if counters.get("dropped"):
                notes.append(
                    f"{key}/{name}: the agent's own metrics count {counters['dropped']:,.0f} dropped items "
                    f"(by reason: {counters['dropped_by_reason']}) and {counters['refused']:,.0f} refused."
                )
            if s["crashes"] or s["unclean_exits"]:
                notes.append(f"{key}/{name}: {s['crashes']} crash(es), {s['unclean_exits']} unclean exit(s).")
    return notes


def processor_overheads(summary: dict[str, Any], baseline: str) -> dict[str, dict[str, float | None]]:
    """Per processor scenario and system: CPU per span received / the same in `baseline` (no processors)."""
    base = summary.get(baseline, {}).get("systems", {})
    out: dict[str, dict[str, float | None]] = {}
    for key, entry in summary.items():
        if not key.startswith("proc-"):
            continue
        out[key] = {
            name: ratio(
                s.get("cpu_s_per_million_received"), base.get(name, {}).get("cpu_s_per_million_received")
            )
            for name, s in entry["systems"].items()
        }
    return out


def _processor_targets(summary: dict[str, Any], baseline: str) -> dict[str, Any]:
    overheads = processor_overheads(summary, baseline)
    result = {}
    for family, goal in PROCESSOR_GOALS.items():
        measured = overheads.get(f"proc-{family}", {}).get("agent")
        result[f"processor_{family}"] = verdict(
            None if measured is None else measured <= goal,
            measured,
            f"agent CPU per span with the {family} processor ≤ {goal:g}× without processors",
        )
    return result


def verdict(met: bool | None, measured: Any, target: str) -> dict[str, Any]:
    return {"met": met, "measured": measured, "target": target}


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets, judged on what was measured (None when the scenario did not run)."""
    result: dict[str, Any] = {}
    head = summary.get("grpc-http-gzip", {})
    eff = (head.get("ratios") or {}).get("spans_per_cpu_s")
    result["head_to_head_efficiency"] = verdict(
        None if eff is None else eff >= TARGET_EFFICIENCY_RATIO,
        eff,
        "agent spans per CPU-second ≥ 1.5× rotel's",
    )
    zstd = summary.get("grpc-http-zstd", {}).get("systems", {}).get("agent", {})
    rate = zstd.get("spans_per_s")
    result["zstd_throughput"] = verdict(
        None if rate is None else rate >= TARGET_ZSTD_SPANS_PER_S, rate, "≥ 250,000 spans/s on one core"
    )
    over = summary.get("overload", {})
    agent = over.get("systems", {}).get("agent")
    if agent is None:
        result["overload"] = verdict(None, None, "peak RSS < limit, zero crashes, every refusal retryable")
    else:
        limit = over["overload"]["memory_limit_mib"]
        peak = agent["spread"]["peak_rss_mib"]["max"]
        client = agent["client"]
        ok = (
            peak is not None
            and peak < limit
            and agent["crashes"] == 0
            and agent["unclean_exits"] == 0
            and client.get("non_retryable", 0) == 0
            and client.get("transport_errors", 0) == 0
        )
        measured = {
            "worst_peak_rss_mib": peak,
            "memory_limit_mib": limit,
            "crashes": agent["crashes"],
            "unclean_exits": agent["unclean_exits"],
            "refused_retryable": client.get("retryable", 0),
            "refused_non_retryable": client.get("non_retryable", 0),
            "transport_errors": client.get("transport_errors", 0),
            "accepted_not_delivered_spans": agent["accepted_not_delivered_spans"],
        }
        result["overload"] = verdict(ok, measured, "peak RSS < limit, zero crashes, every refusal retryable")
    result.update(_processor_targets(summary, "grpc-http-gzip"))
    return result
