"""Study `load-balancing`: an agent balancing over 3 gateway agents by trace id, against round robin.

Topology, every part a real process: the load generator (OTLP/gRPC, the benchmark's 100-span requests,
traces of 5 consecutive spans) → the front agent (pinned to the system CPU) whose one exporter lists the
3 gateways (`endpoints`, OTLP/gRPC, no compression) with `loadBalancing` → 3 gateway agents → each its own
trace-recording sink (`bench/trace_sink.py`). The gateways, sinks and load generator share the client CPU.

Measured for the front agent, per routing key: spans/s delivered, CPU seconds per million spans. With
`roundRobin` whole batches go to one gateway after the other, nothing is cut; with `traceID` every batch is
cut at the wire level by trace id; the difference per span is what the split costs. The proof: after the
`traceID` run, the trace ids each gateway's sink received must not overlap (no trace reached two gateways),
and the sinks got every span the front agent acknowledged; after the `roundRobin` run, for contrast, the
share of traces that reached more than one gateway is shown. The load generator sends its 64 distinct
requests over and over, so each trace id comes back in many batches: keeping a trace together means doing
it the same way every time.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import fleet, loadgen, measure, payloads, runner, stats, systems
from bench.counters import total
from bench.trace_sink import TraceSink

GATEWAYS = 3
KEYS = ("roundRobin", "traceID")


def gateway_config(sink_port: int) -> dict[str, Any]:
    return _pipeline(
        {
            "name": "sink",
            "endpoint": f"http://127.0.0.1:{sink_port}",
            "protocol": "http/protobuf",
            "compression": "none",
        },
    )


def front_config(gateways: list[int], key: str) -> dict[str, Any]:
    exporter = {
        "name": "gateways",
        "endpoints": [f"127.0.0.1:{port}" for port in gateways],
        "protocol": "grpc",
        "compression": "none",
        "tls": {"insecure": True},
        "loadBalancing": {"routingKey": key},
    }
    return _pipeline(exporter)


def _pipeline(exporter: dict[str, Any]) -> dict[str, Any]:
    """Receivers and telemetry on ports the OS picks (`--any-free-port`), named in the ready file."""
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "bench"},
        "spec": {
            "receivers": {"otlp": {"grpc": {}, "http": {"enabled": False}}},
            "processors": {
                "batch": {"maxItems": systems.BATCH_ITEMS, "timeout": f"{systems.BATCH_TIMEOUT_MS}ms"}
            },
            "exporters": [exporter],
            "telemetry": {"logLevel": "warning"},
            "lifecycle": {"shutdownGracePeriod": f"{systems.SHUTDOWN_GRACE_S}s"},
        },
    }


def start_agent(
    config: dict[str, Any], workdir: Path, name: str, cpus: tuple[int, ...] | None
) -> systems.Running:
    """An agent process running `config`, pinned to `cpus`, in its own process group, on ports the OS
    picks (`systems.wait_ready` reads them from its ready file)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path, log, ready = workdir / f"{name}.yaml", workdir / f"{name}.out", workdir / f"{name}.ready.json"
    path.write_text(yaml.safe_dump(config))
    ready.unlink(missing_ok=True)
    job = systems.Job("grpc", "none", 0)
    with log.open("wb") as out:
        process = subprocess.Popen(
            systems.pinned(systems.agent_command(path, ready), cpus),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stop() reaches every child
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return systems.Running(systems.AGENT, process, job, log, path, ready)


def run_key(
    key: str, bodies: tuple[bytes, ...], seconds: float, warmup: float, workdir: Path
) -> dict[str, Any]:
    pinned = runner.placement()["pinned"]
    system_cpus = runner.SYSTEM_CPUS if pinned else None
    client_cpus = runner.CLIENT_CPUS if pinned else None
    sinks = [TraceSink.start(client_cpus) for _ in range(GATEWAYS)]
    agents: list[systems.Running] = []
    generator: fleet.LoadGenerator | None = None
    try:
        for index, trace_sink in enumerate(sinks):
            config = gateway_config(trace_sink.port)
            agents.append(start_agent(config, workdir / key, f"gateway-{index}", client_cpus))
        config = loadgen.LoadConfig("grpc", bodies, 100, concurrency=16, cpus=client_cpus)
        generator = fleet.LoadGenerator.start(config, 1)  # spawned while the agents start
        gateway_ports = [systems.wait_ready(agent).grpc for agent in agents]
        front = start_agent(front_config(gateway_ports, key), workdir / key, "front", system_cpus)
        agents.append(front)
        generator.go(systems.wait_ready(front).grpc)
        deadline = time.monotonic() + 20
        while total(generator.snapshot()).get("accepted", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(warmup)
        before = (time.monotonic(), measure.cpu_seconds([front.pid]), total(generator.snapshot()))
        time.sleep(seconds)
        after = (time.monotonic(), measure.cpu_seconds([front.pid]), total(generator.snapshot()))
        generator.stop()
        acknowledged = after[2]["accepted_spans"]
        front.stop()  # drains what it holds to the gateways
        for agent in agents[:-1]:
            agent.stop()  # drains to the sinks
    finally:
        if generator is not None:
            generator.stop()
        for agent in agents:
            agent.stop()
        received = [trace_sink.stop() for trace_sink in sinks]
    spans_window = after[2]["accepted_spans"] - before[2]["accepted_spans"]
    cpu = after[1] - before[1]
    seen: dict[bytes, int] = {}
    for _, traces in received:
        for trace in traces:
            seen[trace] = seen.get(trace, 0) + 1
    return {
        "routing_key": key,
        "spans_per_s": spans_window / (after[0] - before[0]),
        "cpu_s_per_million_spans": cpu / spans_window * 1e6 if spans_window else None,
        "spans_acknowledged": acknowledged,
        "spans_delivered": sum(spans for spans, _ in received),
        "spans_per_gateway": [spans for spans, _ in received],
        "traces": len(seen),
        "traces_on_several_gateways": sum(1 for count in seen.values() if count > 1),
    }


def run(quick: bool) -> dict[str, Any]:
    seconds, warmup, rounds = (4.0, 2.0, 1) if quick else (10.0, 3.0, 3)
    bodies = tuple(payloads.build_bodies(64, 100))
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key in KEYS}
    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp:
        for _ in range(rounds):
            for key in KEYS:
                samples[key].append(run_key(key, bodies, seconds, warmup, Path(tmp)))
    rows = [stats.median_run(runs, "cpu_s_per_million_spans") for runs in samples.values()]
    by_key = {row["routing_key"]: row for row in rows}
    split = by_key["traceID"]
    extra = None
    if split["cpu_s_per_million_spans"] and by_key["roundRobin"]["cpu_s_per_million_spans"]:
        extra = split["cpu_s_per_million_spans"] - by_key["roundRobin"]["cpu_s_per_million_spans"]
    every_traceid_run_kept_traces = all(r["traces_on_several_gateways"] == 0 for r in samples["traceID"])
    lossless = all(r["spans_delivered"] >= r["spans_acknowledged"] for runs in samples.values() for r in runs)
    return {
        "rows": rows,
        "extra_cpu_s_per_million_spans": extra,
        "target": {
            "target": "traceID: every span of a trace at one gateway, every acknowledged span delivered",
            "measured": {
                "traces on several gateways": sum(
                    r["traces_on_several_gateways"] for r in samples["traceID"]
                ),
                "acknowledged, not delivered": sum(
                    max(0, r["spans_acknowledged"] - r["spans_delivered"])
                    for runs in samples.values()
                    for r in runs
                ),
            },
            "met": every_traceid_run_kept_traces and lossless,
        },
        "notes": [
            f"{GATEWAYS} gateway agents, OTLP/gRPC without compression between the agents; {seconds:g} s "
            f"measured after {warmup:g} s, {rounds} round(s) per key, median by CPU.",
            "CPU is the front agent's (process tree), per span it acknowledged in the window. The split's "
            "cost is the difference between traceID and roundRobin (which cuts nothing).",
            "traces on several gateways: trace ids that more than one gateway's sink received.",
        ],
    }


def markdown(result: dict[str, Any]) -> list[str]:
    from bench import report

    fmt = report.fmt
    lines = [
        "| routing key | spans/s | CPU-s / M spans (front agent) | spans per gateway | traces "
        "| on several gateways |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        per = " / ".join(fmt(n) for n in row["spans_per_gateway"])
        cpu = fmt(row["cpu_s_per_million_spans"], 2)
        lines.append(
            f"| {row['routing_key']} | {fmt(row['spans_per_s'])} | {cpu} | {per} | {fmt(row['traces'])} "
            f"| {fmt(row['traces_on_several_gateways'])} |"
        )
    extra = result.get("extra_cpu_s_per_million_spans")
    lines += [
        "",
        f"Extra CPU of the split (traceID − roundRobin): {fmt(extra, 2)} CPU-s per million spans.",
        "",
    ]
    return lines
