"""`python -m bench.run [--quick]`: run every scenario against the agent and rotel, write the report.

Runs alternate between systems (agent, rotel, agent, rotel, ...) within each scenario and repetition, so
slow drift on a shared machine hits both alike. A run that fails is recorded and the rest go on. When a
target is missed in full mode, the scenario is run once more under py-spy and the profile goes in the
report. Outputs: bench/results.json, docs/benchmarks.md, docs/img/benchmarks.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import payloads, profiling, report, runner, scenarios, stats, studies, systems

ROOT = Path(__file__).resolve().parent.parent
PROFILED_TARGETS = {"head_to_head_efficiency": "grpc-http-gzip", "zstd_throughput": "grpc-http-zstd"}
RUN_OVERHEAD_S = 4.0  # starting the sink, the system and the load generator, and stopping them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short repetition (under 2 minutes)")
    parser.add_argument("--scenario", action="append", help="only this scenario or study (repeatable)")
    parser.add_argument("--systems", default="agent,rotel", help="comma-separated: agent,rotel")
    parser.add_argument("--repetitions", type=int, help="override the profile's repetitions")
    parser.add_argument("--measure", type=float, help="override the measurement window (seconds)")
    parser.add_argument("--warmup", type=float, help="override the warm-up (seconds)")
    parser.add_argument("--workers", type=int, help="load-generator processes")
    parser.add_argument("--concurrency", type=int, help="in-flight requests per worker (closed loop)")
    parser.add_argument("--spans-per-request", type=int, help="spans in each request (default 100)")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="py-spy the agent: auto = for missed targets in full mode",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    return parser.parse_args(argv)


def build_profile(args: argparse.Namespace) -> scenarios.Profile:
    base = scenarios.QUICK if args.quick else scenarios.FULL
    overrides: dict[str, Any] = {}
    if args.repetitions:
        overrides.update(repetitions=args.repetitions, overload_repetitions=args.repetitions)
    if args.measure:
        overrides.update(measure_s=args.measure, overload_measure_s=args.measure)
    if args.warmup is not None:
        overrides.update(warmup_s=args.warmup, overload_warmup_s=args.warmup)
    for name in ("workers", "concurrency", "spans_per_request"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    return dataclasses.replace(base, **overrides)


def schedule(
    chosen: tuple[scenarios.Scenario, ...], wanted: set[str], profile: scenarios.Profile
) -> list[Any]:
    """(repetition, scenario, system) in run order: systems alternate inside each scenario."""
    plan = []
    for rep in range(max(profile.repetitions, profile.overload_repetitions)):
        for scenario in chosen:
            reps = profile.overload_repetitions if scenario.overload else profile.repetitions
            if rep < reps:
                plan += [(rep, scenario, system) for system in scenario.systems if system in wanted]
    return plan


def select(keys: list[str] | None) -> tuple[tuple[scenarios.Scenario, ...], tuple[studies.Study, ...]]:
    """The system scenarios and the studies `--scenario` asks for (all of both without it)."""
    if not keys:
        return scenarios.SCENARIOS, studies.STUDIES
    known = {s.key for s in scenarios.SCENARIOS}
    unknown = set(keys) - known - studies.keys()
    if unknown:
        raise SystemExit(
            f"unknown scenario(s) {sorted(unknown)}; choose from {sorted(known | studies.keys())}"
        )
    return scenarios.by_key([k for k in keys if k in known]) if known & set(keys) else (), studies.by_key(
        keys
    )


def run_studies(chosen: tuple[studies.Study, ...], quick: bool, errors: list[str]) -> dict[str, Any]:
    results = {}
    cpus = runner.SYSTEM_CPUS if runner.placement()["pinned"] else None
    for study in chosen:
        started = time.monotonic()
        try:
            results[study.key] = studies.run(study, quick, cpus)
        except Exception as error:  # one failed study must not lose the rest
            errors.append(f"study {study.key}: {error}")
            print(f"study {study.key}: FAILED: {error}", flush=True)
            continue
        print(f"study {study.key}: done ({time.monotonic() - started:.0f} s)", flush=True)
    return results


def estimate_minutes(profile: scenarios.Profile) -> float:
    total = sum(study.minutes_full for study in studies.STUDIES)
    for scenario in scenarios.SCENARIOS:
        if scenario.overload:
            per = profile.overload_warmup_s + profile.overload_measure_s + RUN_OVERHEAD_S
            total += per * profile.overload_repetitions * len(scenario.systems)
        else:
            total += (
                (profile.warmup_s + profile.measure_s + RUN_OVERHEAD_S)
                * profile.repetitions
                * len(scenario.systems)
            )
    return total / 60


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def method(profile: scenarios.Profile) -> list[str]:
    p = profile
    return [
        f"Requests: {p.spans_per_request} spans each (~490 B/span serialized, ~11 attributes per span, a "
        f"resource with service and k8s attributes), {p.distinct_requests} distinct pre-serialized requests "
        "with different trace ids, built once before any clock starts.",
        f"Load generator: {p.workers} processes, each with its own gRPC channel or HTTP/1.1 keep-alive "
        f"connections, {p.concurrency} requests in flight per process (closed loop); overload is open loop "
        f"at a fixed rate with up to {p.open_loop_slots} in flight per process.",
        "Sink: a separate process answering OTLP/HTTP and OTLP/gRPC; counts spans with a wire-format walk "
        "after decompressing (no protobuf parse); answers before counting, so its own cost is not on the "
        "exporter's round trip. Spans/s are counted at the sink; wire bytes are the compressed bodies it "
        "received (gRPC: message + 5-byte frame).",
        f"Each run: fresh sink and system; warm-up {p.warmup_s:g} s (overload {p.overload_warmup_s:g} s) "
        f"once traffic flows, then a {p.measure_s:g} s window (overload {p.overload_measure_s:g} s). "
        "CPU = user+system of the system's process tree over the window (psutil); peak RSS = max of "
        "sampled tree RSS (every 50 ms) and the kernel's VmHWM over the whole run.",
        f"Repetitions: {p.repetitions} ({p.overload_repetitions} for overload), systems alternating; "
        "tables show the median with min–max and ±half the relative spread.",
        "Both systems batch 8192 spans / 200 ms. rotel is the `rotel` wheel's `rotel-agent start --exporter "
        "otlp`, gzip at its default level; the agent uses gzip level 1 and zstd level 1 (its defaults).",
        "‘client+sink CPU util’ is the load generator's and sink's CPU over the window divided by the "
        "window; near 1.0 means the client core was saturated and the system's throughput is a lower bound.",
        "Processor scenarios (proc-*) send the same requests as grpc-http-gzip through one processor family "
        "(bench/processors.py); rotel runs the same work as Python processors through its SDK "
        "(bench/rotel_processors/, `--otlp-with-trace-processor`). They are charged per span received.",
    ]


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    profile = build_profile(args)
    chosen, chosen_studies = select(args.scenario)
    wanted = set(args.systems.split(","))
    meta = {
        "mode": profile.name,
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.run " + shlex.join(sys.argv[1:]),
        "commit": commit(),
        "load_average_at_start": list(os.getloadavg()),
        "machine": machine(),
        "placement": runner.placement(),
        "versions": {p: version_of(p) for p in ("grpcio", "protobuf", "aiohttp", "zstandard", "rotel")},
        "profile": dataclasses.asdict(profile),
        "estimated_full_minutes": estimate_minutes(scenarios.FULL),
        "method": method(profile),
    }
    if "rotel" in wanted:
        meta["rotel_binary"] = systems.rotel_binary()
    bodies = tuple(payloads.build_bodies(profile.distinct_requests, profile.spans_per_request))
    two_teams = tuple(payloads.build_two_team_bodies(profile.distinct_requests, profile.spans_per_request))
    runs, errors = [], []
    plan = schedule(chosen, wanted, profile)
    with tempfile.TemporaryDirectory(prefix="otlp-bench-") as tmp:
        for index, (rep, scenario, system) in enumerate(plan, 1):
            label = f"[{index}/{len(plan)}] {scenario.key} {system} rep {rep + 1}"
            started = time.monotonic()
            try:
                sent = two_teams if scenario.tenants else bodies
                result = runner.run_once(scenario, system, profile, sent, Path(tmp) / f"run{index}")
            except Exception as error:  # one failed run must not lose the others
                errors.append(f"{label}: {error}")
                print(f"{label}: FAILED: {error}", flush=True)
                traceback.print_exc()
                continue
            result["repetition"] = rep
            runs.append(result)
            print(
                f"{label}: {result['spans_per_s']:,.0f} spans/s, "
                f"{result['cpu_s_per_million_spans'] or 0:.2f} CPU-s/M, {result['peak_rss_mib']:.0f} MiB, "
                f"cpu util {result['cpu_util']:.2f}, client {result['client_side_cpu_util']:.2f} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        summary = stats.summarize(runs, list(chosen))
        verdicts = stats.targets(summary)
        profiles = take_profiles(args, profile, verdicts, bodies, Path(tmp), errors)
    study_results = run_studies(chosen_studies, args.quick, errors)
    verdicts.update(studies.targets(study_results))
    return {
        "meta": meta,
        "targets": verdicts,
        "studies": study_results,
        "findings": stats.findings(summary),
        "scenarios": summary,
        "profiles": profiles,
        "errors": errors,
        "runs": runs,
    }


def take_profiles(
    args: argparse.Namespace,
    profile: scenarios.Profile,
    verdicts: dict[str, Any],
    bodies: tuple[bytes, ...],
    tmp: Path,
    errors: list[str],
) -> dict[str, Any]:
    if args.profile == "never" or (args.profile == "auto" and args.quick):
        return {}
    chosen = {s.key for s in select(args.scenario)[0]}
    keys = [
        key
        for target, key in PROFILED_TARGETS.items()
        if key in chosen and (args.profile == "always" or verdicts[target]["met"] is False)
    ]
    out_dir = ROOT / "bench" / "profiles"
    out_dir.mkdir(exist_ok=True)
    profiles = {}
    for key in keys:
        raw = out_dir / f"{key}.collapsed.txt"
        probe = profiling.recorder(raw, 100, runner.CLIENT_CPUS if runner.placement()["pinned"] else None)
        try:
            runner.run_once(
                scenarios.by_key([key])[0], "agent", profile, bodies, tmp / f"profile-{key}", probe
            )
            summary = profiling.summarize(raw.read_text())
        except Exception as error:
            errors.append(f"profile {key}: {error}")
            continue
        summary.update(
            rate=100,
            raw=str(raw.relative_to(ROOT)),
            command="py-spy record --pid AGENT --rate 100 --native",
        )
        profiles[key] = summary
    return profiles


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started.
    signal.signal(signal.SIGTERM, _interrupt)
    document = run_all(args)
    report.write_all(document, args.results, args.docs)
    print(f"wrote {args.results} and {args.docs / 'benchmarks.md'}")
    for name, item in document["targets"].items():
        print(f"target {name}: {item['met']} (measured {item['measured']})")
    return 0 if document["runs"] or document["studies"] else 1


if __name__ == "__main__":
    sys.exit(main())
