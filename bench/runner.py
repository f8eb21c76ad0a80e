"""One measured run: a fresh sink, one system under test, the load generator, then the numbers.

Sequence: start the sink (CPU 1), start the system (CPU 0) and — while the load generator's workers are
spawned (CPU 1) — wait until it is ready and learn the ports it got, start the load, let it warm up, then
measure a steady-state window: spans counted *at the sink*, CPU of the system's process tree, client
outcomes, and the CPU the client side used (to tell when the client, not the system, was the limit). Peak
RSS is sampled over the whole run. Everything started here is stopped in `finally` blocks, whatever fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fleet, hostile, loadgen, measure, payloads, sink, systems
from bench.counters import delta, total
from bench.scenarios import Profile, Scenario

SYSTEM_CPUS = (0,)
CLIENT_CPUS = (1,)
REFUSED_METRIC = "otlp_agent_refused_items_total"
Probe = Callable[[systems.Running, float], None]


def placement() -> dict[str, Any]:
    """Where things run; on a machine with fewer than 2 CPUs nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2 and set(SYSTEM_CPUS + CLIENT_CPUS) <= set(cpus)
    return {
        "pinned": pinned,
        "system_cpus": list(SYSTEM_CPUS) if pinned else cpus,
        "client_and_sink_cpus": list(CLIENT_CPUS) if pinned else cpus,
        "available_cpus": cpus,
    }


def ingress_port(scenario: Scenario, ports: systems.Ports) -> int:
    return ports.grpc if scenario.ingress == "grpc" else ports.http


def load_config(scenario: Scenario, profile: Profile, bodies: tuple[bytes, ...], host: str) -> Any:
    """The load, sent to `host`; its port is given when it starts (`LoadGenerator.go`)."""
    rate = None
    concurrency = profile.concurrency
    if scenario.overload:
        assert scenario.sink_spans_per_s is not None
        offered_requests = scenario.sink_spans_per_s * scenario.offered_factor / profile.spans_per_request
        rate = offered_requests / profile.workers
        concurrency = profile.open_loop_slots
    return loadgen.LoadConfig(
        protocol=scenario.ingress,
        host=host,
        bodies=payloads.as_json(bodies) if scenario.ingress == "http-json" else bodies,
        spans_per_request=profile.spans_per_request,
        concurrency=concurrency,
        rate=rate,
        cpus=CLIENT_CPUS if placement()["pinned"] else None,
    )


def make_job(scenario: Scenario, sink_handle: fleet.Sink, dead: systems.RefusingPort | None) -> systems.Job:
    """`dead`: where a backend that is down "listens" (scenarios with tenants b-down)."""
    return systems.Job(
        egress_protocol=scenario.egress,
        compression=scenario.compression,
        sink_port=sink_handle.http_port if scenario.egress == "http" else sink_handle.grpc_port,
        memory_limit_mib=scenario.memory_limit_mib,
        spike_limit_mib=scenario.spike_limit_mib,
        tenants=scenario.tenants,
        dead_port=dead.port if dead is not None else None,
        processors=scenario.processors,
    )


def window_numbers(
    sink_d: dict[str, int], client_d: dict[str, int], cpu_s: float, client_cpu_s: float, seconds: float
) -> dict[str, Any]:
    """The per-run figures the report aggregates (pure: easy to test)."""
    spans = sink_d["spans"]
    answered = sum(client_d.get(kind, 0) for kind in ("accepted", "retryable", "non_retryable"))
    return {
        "window_s": seconds,
        "spans_delivered": spans,
        "spans_per_s": spans / seconds,
        "cpu_s": cpu_s,
        "cpu_util": cpu_s / seconds,
        "cpu_s_per_million_spans": cpu_s / spans * 1e6 if spans else None,
        # Per span received (what processors are charged by: filter and sampling deliver fewer).
        "cpu_s_per_million_received": cpu_s / client_d["accepted_spans"] * 1e6
        if client_d["accepted_spans"]
        else None,
        "delivered_fraction": spans / client_d["accepted_spans"] if client_d["accepted_spans"] else None,
        "spans_per_cpu_s": spans / cpu_s if cpu_s > 0 else None,
        "wire_bytes_per_span": sink_d["wire_bytes"] / spans if spans else None,
        "compression_ratio": sink_d["decoded_bytes"] / sink_d["wire_bytes"] if sink_d["wire_bytes"] else None,
        "export_requests": sink_d["requests"],
        "mean_export_spans": spans / sink_d["requests"] if sink_d["requests"] else None,
        "client_accepted_spans_per_s": client_d["accepted_spans"] / seconds,
        "client_offered_requests_per_s": (client_d["sent"] + client_d["not_sent"]) / seconds,
        "client_side_cpu_util": client_cpu_s / seconds,
        "answered_requests_per_s": answered / seconds,
        "cpu_us_per_request": cpu_s / answered * 1e6 if answered else None,
    }


def run_once(
    scenario: Scenario,
    system: str,
    profile: Profile,
    bodies: tuple[bytes, ...],
    workdir: Path,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """Run `system` through `scenario` once and return its figures (raises if it cannot even start).

    `probe(running, seconds)`, when given, runs during the measurement window instead of sleeping
    (a profiler): such a run's figures are disturbed by it and must not be reported as measurements.
    """
    pin = placement()["pinned"]
    sink_handle = fleet.Sink.start(
        sink.SinkConfig(max_spans_per_s=scenario.sink_spans_per_s, cpus=CLIENT_CPUS if pin else None)
    )
    dead = systems.RefusingPort() if scenario.tenants == "b-down" else None
    try:
        job = make_job(scenario, sink_handle, dead)
        running, generator = _start_system(
            scenario, system, job, profile, bodies, workdir, SYSTEM_CPUS if pin else None
        )
        try:
            with measure.RssSampler(running.pid) as rss:
                result = _drive(scenario, profile, job, running, generator, sink_handle, probe)
            result["peak_rss_mib"] = rss.peak_mib
        finally:
            generator.stop()  # idempotent; here for the paths where _drive never ran
            exit_code = running.stop()
        result["exit_code"] = exit_code
        result["crashed"] = not result["alive_at_end"]
        result["clean_exit"] = exit_code == 0
        if result["crashed"] or exit_code != 0:
            result["log_tail"] = running.log_tail()
        # After the system stopped (and drained what it could): everything the sink ever counted.
        result["sink_total_spans"] = sink_handle.counters.snapshot()["spans"]
        result["accepted_not_delivered_spans"] = (
            result["client_total"]["accepted_spans"] - result["sink_total_spans"]
        )
    finally:
        if dead is not None:
            dead.close()
        sink_handle.stop()
    result.update(scenario=scenario.key, system=system)
    return result


def _start_system(
    scenario: Scenario,
    system: str,
    job: systems.Job,
    profile: Profile,
    bodies: tuple[bytes, ...],
    workdir: Path,
    cpus: tuple[int, ...] | None,
) -> tuple[systems.Running, fleet.LoadGenerator]:
    """Start the system and (meanwhile) spawn the idle load generator; await readiness (the system's
    ports are known from then on: `running.listening`)."""
    running = systems.start(system, job, workdir, cpus)
    generator = fleet.LoadGenerator.start(
        load_config(scenario, profile, bodies, systems.ingress_host(system, scenario.ingress)),
        profile.workers,
    )
    try:
        systems.wait_ready(running)
    except BaseException:
        generator.stop()
        running.stop()
        raise
    return running, generator


def _drive(
    scenario: Scenario,
    profile: Profile,
    job: systems.Job,
    running: systems.Running,
    generator: fleet.LoadGenerator,
    sink_handle: fleet.Sink,
    probe: Probe | None,
) -> dict[str, Any]:
    warmup = profile.overload_warmup_s if scenario.overload else profile.warmup_s
    seconds = profile.overload_measure_s if scenario.overload else profile.measure_s
    ports = running.listening
    generator.go(ingress_port(scenario, ports))
    try:
        _await_first_answer(generator, running)
        time.sleep(warmup)
        client_pids = [*generator.pids, sink_handle.pid]
        floods = hostile.Hostile(hostile.HostileConfig(ports.grpc, ports.http)) if scenario.hostile else None
        before = _snapshot(running, generator, sink_handle, client_pids)
        if probe is None:
            time.sleep(seconds)
        else:
            probe(running, seconds)
        after = _snapshot(running, generator, sink_handle, client_pids)
        hostile_result = floods.stop() if floods is not None else None
        alive = running.alive()
        agent_metrics = systems.scrape_metrics(ports.telemetry) if ports.telemetry is not None else None
    finally:
        codes = generator.stop()
        unreported = generator.unreported
    elapsed = after["t"] - before["t"]
    result = window_numbers(
        delta(after["sink"], before["sink"]),
        delta(after["client"], before["client"]),
        after["cpu"] - before["cpu"],
        after["client_cpu"] - before["client_cpu"],
        elapsed,
    )
    busy = [b - a for a, b in zip(before["busy"], after["busy"], strict=True)]
    result.update(
        # Busy time on each CPU not explained by the processes we measured: other people's load.
        foreign_cpu_util=foreign_util(busy, result, elapsed),
        client_window=delta(after["client"], before["client"]),
        client_total=after["client"],
        status_counts=codes,
        workers_unreported=unreported,
        alive_at_end=alive,
        refused_items_metric=systems.metric_sum(agent_metrics, REFUSED_METRIC),
        agent_metrics=agent_metrics,
    )
    if scenario.hostile:
        result["hostile"] = hostile_result
    return result


def foreign_util(busy: list[float], result: dict[str, Any], seconds: float) -> dict[str, float] | None:
    """Per pinned CPU, the busy fraction left after removing the system's (CPU 0) or client's (CPU 1) own."""
    if not placement()["pinned"] or seconds <= 0:
        return None
    return {
        "system_cpu": max(0.0, busy[SYSTEM_CPUS[0]] / seconds - result["cpu_util"]),
        "client_cpu": max(0.0, busy[CLIENT_CPUS[0]] / seconds - result["client_side_cpu_util"]),
    }


def _await_first_answer(
    generator: fleet.LoadGenerator, running: systems.Running, timeout: float = 20.0
) -> None:
    """Warm-up starts when traffic flows, not when the (slow to spawn) workers were launched."""
    deadline = time.monotonic() + timeout
    while total(generator.snapshot()).get("sent", 0) == 0:
        if time.monotonic() > deadline or not running.alive():
            raise RuntimeError(f"no answer from {running.name} within {timeout}s:\n{running.log_tail()}")
        time.sleep(0.05)


def _snapshot(
    running: systems.Running, generator: fleet.LoadGenerator, sink_handle: fleet.Sink, client_pids: list[int]
) -> dict[str, Any]:
    return {
        "t": time.monotonic(),
        "sink": sink_handle.counters.snapshot(),
        "client": total(generator.snapshot()),
        "cpu": measure.cpu_seconds([running.pid]),
        "client_cpu": measure.cpu_seconds(client_pids),
        "busy": measure.busy_cpu_seconds(),
    }
