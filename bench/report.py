"""Writing the results: bench/results.json, docs/benchmarks.md and the plot in docs/img/.

The Markdown page is generated in full on every run (do not edit it by hand): the machine and its load,
CPU placement, the exact command, the targets with verdicts, one table per scenario, the overload
outcome, and (when a target was missed and a profile was taken) where the time went.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench import stats, studies

PLOT_NAME = "benchmarks.png"


def fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def fmt_spread(spread: dict[str, Any], digits: int = 0) -> str:
    if not spread or spread.get("median") is None:
        return "–"
    if spread["n"] == 1:
        return fmt(spread["median"], digits)
    rel = spread["rel_spread"]
    low, high = fmt(spread["min"], digits), fmt(spread["max"], digits)
    if rel is None:  # a median of zero (team B down: nothing new reaches the sink): no relative spread
        return f"{fmt(spread['median'], digits)} ({low}–{high})"
    return f"{fmt(spread['median'], digits)} ({low}–{high}, ±{rel * 50:.0f}%)"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Throughput and CPU per million spans, per scenario, both systems, with min–max error bars."""
    keys = [k for k, v in summary.items() if "overload" not in v]
    systems = ("agent", "rotel")
    colors = {"agent": "#3572A5", "rotel": "#DEA584"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for axis, metric, label in (
        (axes[0], "spans_per_s", "spans/s delivered to the sink (higher is better)"),
        (axes[1], "cpu_s_per_million_spans", "CPU seconds per million spans (lower is better)"),
    ):
        for offset, system in enumerate(systems):
            xs, ys, lo, hi = [], [], [], []
            for i, key in enumerate(keys):
                cell = summary[key]["systems"].get(system, {}).get("spread", {}).get(metric)
                if not cell or cell["median"] is None:
                    continue
                xs.append(i + (offset - 0.5) * width)
                ys.append(cell["median"])
                lo.append(cell["median"] - cell["min"])
                hi.append(cell["max"] - cell["median"])
            if xs:
                axis.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=system, color=colors[system])
        axis.set_xticks(range(len(keys)), keys, rotation=10)
        axis.set_title(label, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _machine_section(meta: dict[str, Any]) -> list[str]:
    machine, load, place = meta["machine"], meta["load_average_at_start"], meta["placement"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    return [
        "## Machine and placement",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['cpus']} CPUs; kernel {machine['kernel']}; "
        f"Python {machine['python']}",
        f"- Load average at start (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        + (" — the machine was busy; treat the numbers as indicative." if load[0] > 0.5 else ""),
        f"- Versions: {versions}",
        f"- Placement: {'pinned with taskset/sched_setaffinity' if place['pinned'] else 'NOT pinned'}; "
        f"system under test on CPU {place['system_cpus']}, load generator and sink on CPU "
        f"{place['client_and_sink_cpus']}",
        "",
    ]


def _targets_section(targets: dict[str, Any]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for name, item in targets.items():
        measured = item["measured"]
        if isinstance(measured, float):
            measured = fmt(measured, 2 if measured < 100 else 0)
        elif isinstance(measured, dict):
            measured = ", ".join(
                f"{k}={fmt(v, 1) if isinstance(v, float) else v}" for k, v in measured.items()
            )
        verdict = {True: "met", False: "**MISSED**", None: "not measured"}[item["met"]]
        lines.append(f"| {name}: {item['target']} | {measured} | {verdict} |")
    return [*lines, ""]


def _findings_section(notes: list[str]) -> list[str]:
    if not notes:
        return []
    return ["## Read before quoting", "", *[f"- {note}" for note in notes], ""]


def _scenario_table(key: str, entry: dict[str, Any]) -> list[str]:
    lines = [
        f"### {entry['title']} (`{key}`)",
        "",
        "| system | spans/s (median, min–max) | CPU-s / M spans | peak RSS MiB | wire B/span "
        "| system CPU util | client+sink CPU util | other load on system CPU (max) | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sys_summary in entry["systems"].items():
        sp = sys_summary["spread"]
        note = (
            " (client-bound?)"
            if (sys_summary["client_side_cpu_util"] or 0) >= stats.CLIENT_BOUND_UTIL
            else ""
        )
        lines.append(
            f"| {name} | {fmt_spread(sp['spans_per_s'])} | {fmt_spread(sp['cpu_s_per_million_spans'], 2)} "
            f"| {fmt_spread(sp['peak_rss_mib'], 0)} | {fmt_spread(sp['wire_bytes_per_span'], 1)} "
            f"| {fmt(sys_summary['cpu_util'], 2)} | {fmt(sys_summary['client_side_cpu_util'], 2)}{note} "
            f"| {fmt(sys_summary.get('foreign_load_on_system_cpu'), 2)} | {sys_summary['runs']} |"
        )
    if entry.get("ratios"):
        r = entry["ratios"]
        lines += [
            "",
            f"Agent / rotel: throughput {fmt(r['spans_per_s'], 2)}×, spans per CPU-second "
            f"{fmt(r['spans_per_cpu_s'], 2)}×, CPU per span {fmt(r['cpu_s_per_million_spans'], 2)}×, "
            f"peak RSS {fmt(r['peak_rss_mib'], 2)}×, "
            f"wire bytes per span {fmt(r['wire_bytes_per_span'], 2)}×.",
        ]
    return [*lines, ""]


def _tenants_note(entry: dict[str, Any]) -> list[str]:
    """Per request, since with team B down the sink sees only team A's first copy of each request."""
    agent = entry["systems"].get("agent")
    if not agent:
        return []
    sp = agent["spread"]
    status = agent["status_counts"]
    down = entry["tenants"] == "b-down"
    what = (
        "Team B's backend is down: its part of every request is refused (the client is told to retry and, as "
        "this load generator cycles through its distinct requests, sends the same ones again, so team A "
        "takes each once and then skips it: every request is fingerprinted)."
        if down
        else "Both backends up: every request is accepted whole and nothing is fingerprinted (the fast path)."
    )
    return [
        f"{what} Requests answered per second: {fmt_spread(sp['answered_requests_per_s'])}; agent CPU per "
        f"request: {fmt_spread(sp['cpu_us_per_request'])} µs; client statuses: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(status.items())),
        "",
    ]


def _processors_section(summary: dict[str, Any]) -> list[str]:
    """CPU per span received with each processor family, against the same traffic without processors."""
    overheads = stats.processor_overheads(summary, "grpc-http-gzip")
    if not overheads:
        return []
    base = summary.get("grpc-http-gzip", {}).get("systems", {})
    lines = [
        "## Processors",
        "",
        "CPU per span *received* (filter and sampling deliver fewer), median; overhead = that / the same "
        "system's in `grpc-http-gzip` (same requests, no processors). rotel runs the same work as Python "
        "processors through its SDK (bench/rotel_processors/).",
        "",
        "| scenario | system | CPU-s / M spans received | without processors | overhead | delivered |",
        "|---|---|---|---|---|---|",
    ]
    for key, per_system in overheads.items():
        for name, overhead in per_system.items():
            s = summary[key]["systems"][name]
            lines.append(
                f"| `{key}` | {name} | {fmt(s.get('cpu_s_per_million_received'), 2)} "
                f"| {fmt(base.get(name, {}).get('cpu_s_per_million_received'), 2)} "
                f"| {fmt(overhead, 2, '×')} | {fmt((s.get('delivered_fraction') or 0) * 100, 0, '%')} |"
            )
    return [*lines, ""]


def _overload_table(entry: dict[str, Any]) -> list[str]:
    o = entry["overload"]
    lines = [
        f"Backend capped at {fmt(o['sink_spans_per_s'])} spans/s; offered {o['offered_factor']:.0f}× that, "
        f"open loop; agent memory limit {o['memory_limit_mib']}Mi (spike {o['spike_limit_mib']}Mi). rotel "
        "has no memory limit option; it runs the same load for reference. Counts are the client's own, "
        "over all runs. 'Accepted, never delivered' is client-accepted minus sink-counted spans after the "
        "system stopped; a small negative value means requests still in flight when the client stopped "
        "were delivered anyway.",
        "",
        "| system | accepted spans | accepted, never delivered | refused, retryable "
        "| of which with Retry-After/RetryInfo | non-retryable | transport errors "
        "| not sent (client slots full) | worst peak RSS MiB | crashes / unclean exits | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in entry["systems"].items():
        c = s["client"]
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(s["status_counts"].items()))
        lines.append(
            f"| {name} | {fmt(c.get('accepted_spans'))} | {fmt(s['accepted_not_delivered_spans'])} "
            f"| {fmt(c.get('retryable'))} req "
            f"| {fmt(c.get('retry_hint'))} | {fmt(c.get('non_retryable'))} "
            f"| {fmt(c.get('transport_errors'))} "
            f"| {fmt(c.get('not_sent'))} | {fmt(s['spread']['peak_rss_mib']['max'], 0)} "
            f"| {s['crashes']} / {s['unclean_exits']} | {codes} |"
        )
    return [*lines, ""]


def _hostile_table(entry: dict[str, Any]) -> list[str]:
    limit = entry["hostile"]["memory_limit_mib"]
    lines = [
        "While the load generator runs, a hostile client sends round after round of: ~8M empty spans "
        "(16 MiB, HTTP), ~8M empty resource entries (gRPC), then 16 valid 16 MiB bodies over HTTP and 16 "
        "over gRPC at once; a probe sends a 10-span request over each protocol every 20 ms and times every "
        f"answer. Memory limit {limit}Mi.",
        "",
        "| system | probe p50 ms | probe p99 ms | probe max ms | probe answers | worst peak RSS MiB "
        "| flood answers |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in entry["systems"].items():
        h = s.get("hostile")
        if not h:
            continue
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(h["flood_answers"].items()))
        lines.append(
            f"| {name} | {fmt(h['probe_p50_ms']['median'], 1)} | {fmt(h['probe_p99_ms']['median'], 1)} "
            f"| {fmt(h['probe_max_ms']['max'], 0)} | {fmt(h['probe_requests']['median'])} "
            f"| {fmt(s['spread']['peak_rss_mib']['max'], 0)} (limit {limit}) | {answers} |"
        )
    return [*lines, ""]


def _profiles_section(profiles: dict[str, Any]) -> list[str]:
    if not profiles:
        return []
    lines = ["## Where the time goes (py-spy)", ""]
    for key, prof in profiles.items():
        lines += [
            f"### `{key}` — {prof['samples']} busy samples at {prof['rate']} Hz, agent only "
            f"(`{prof['command']}`; {prof.get('waiting_samples', 0)} samples of threads waiting in "
            "epoll/futex left out)",
            "",
            "| function (self time) | share | | function (inclusive) | share |",
            "|---|---|---|---|---|",
        ]
        rows = zip(prof["self"], prof["inclusive"], strict=False)
        for (fn_s, share_s), (fn_i, share_i) in rows:
            lines.append(f"| `{fn_s}` | {share_s:.1%} | | `{fn_i}` | {share_i:.1%} |")
        lines += ["", f"Raw collapsed stacks: `{prof['raw']}`.", ""]
    return lines


def markdown(document: dict[str, Any], plot_rel: str) -> str:
    meta, summary = document["meta"], document["scenarios"]
    lines = [
        "# Benchmarks: the agent against rotel",
        "",
        "Generated by `bench/run.py`; do not edit by hand. "
        f"Mode: **{meta['mode']}**, {meta['started']}, commit `{meta['commit']}`.",
        "",
        "## How to reproduce",
        "",
        "```",
        "make bench                  # full: ~" + f"{meta['estimated_full_minutes']:.0f} min",
        "make bench BENCH_QUICK=1    # quick: under 2 min, for development",
        f"# this run: {meta['command']}",
        "```",
        "",
        *_machine_section(meta),
        "## Method",
        "",
        *[f"- {line}" for line in meta["method"]],
        "",
        *_targets_section(document["targets"]),
        *_findings_section(document.get("findings", [])),
        "## Results",
        "",
        f"![throughput and CPU per span]({plot_rel})",
        "",
    ]
    for key, entry in summary.items():
        lines += _scenario_table(key, entry)
        if "tenants" in entry:
            lines += _tenants_note(entry)
        if "overload" in entry:
            lines += _overload_table(entry)
        if "hostile" in entry:
            lines += _hostile_table(entry)
    lines += _processors_section(summary)
    lines += studies.markdown(document.get("studies", {}))
    lines += _profiles_section(document.get("profiles", {}))
    if document.get("errors"):
        lines += ["## Runs that failed", "", *[f"- {e}" for e in document["errors"]], ""]
    return "\n".join(lines)


def write_all(document: dict[str, Any], results: Path, docs: Path) -> None:
    """results.json, the plot and the Markdown page."""
    write_json(results, document)
    plot(document["scenarios"], docs / "img" / PLOT_NAME)
    (docs / "benchmarks.md").write_text(markdown(document, f"img/{PLOT_NAME}") + "\n")
