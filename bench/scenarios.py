"""The benchmark's scenarios and the two run profiles (quick and full).

A scenario fixes what flows in and out (protocols, compression), which systems run it, and for overload
how hard the backend is squeezed. A profile fixes how long and how often. Both are plain frozen data so the
report can print exactly what was run.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.systems import AGENT, ROTEL


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    ingress: str  # protocol the load generator sends: "grpc" | "http" | "http-json" (OTLP/JSON bodies)
    egress: str  # protocol the system exports with: "http" | "grpc"
    compression: str  # export compression: "gzip" | "zstd" | "none"
    systems: tuple[str, ...] = (AGENT, ROTEL)
    # Overload: the sink accepts at most `sink_spans_per_s`; the load generator offers `offered_factor`
    # times that, open loop, so data piles up in the system and its memory limit must hold.
    sink_spans_per_s: float | None = None
    offered_factor: float = 3.0
    memory_limit_mib: int = 256
    spike_limit_mib: int = 64
    # Tenants: every request holds two teams' resources and routes split it between two exporters; "up":
    # both export to the sink; "b-down": team B's exporter points at a port nobody listens on, so its part
    # of every request is refused once its queue is full while team A's part is taken (a request the
    # agent has seen is recognised when it comes back, so team A takes each distinct request once).
    tenants: str | None = None
    # A processor family (bench/processors.py) both systems run; None: plain forwarding.
    processors: str | None = None
    # Hostile mix: floods and large bodies arrive during the window (see bench/hostile.py).
    hostile: bool = False

    @property
    def overload(self) -> bool:
        return self.sink_spans_per_s is not None


SCENARIOS = (
    Scenario(
        "grpc-http-gzip", "gRPC in → batch → OTLP/HTTP out, gzip (head-to-head)", "grpc", "http", "gzip"
    ),
    Scenario(
        "grpc-http-zstd",
        "gRPC in → batch → OTLP/HTTP out, zstd (ours only)",
        "grpc",
        "http",
        "zstd",
        (AGENT,),
    ),
    Scenario(
        "json-http-zstd",
        "OTLP/JSON over HTTP in → batch → OTLP/HTTP out, zstd (ours only)",
        "http-json",
        "http",
        "zstd",
        (AGENT,),
    ),
    Scenario("http-grpc-none", "HTTP protobuf in → batch → gRPC out, no compression", "http", "grpc", "none"),
    Scenario(
        "tenants",
        "Two teams per request: gRPC in → routes split → 2 exporters, OTLP/HTTP gzip out (ours only)",
        "grpc",
        "http",
        "gzip",
        (AGENT,),
        tenants="up",
    ),
    Scenario(
        "tenants-b-down",
        "Two teams per request, team B's backend down: B's parts refused, A's taken once (ours only)",
        "grpc",
        "http",
        "gzip",
        (AGENT,),
        tenants="b-down",
    ),
    Scenario(
        "overload",
        "Overload: gRPC in → OTLP/HTTP gzip out, backend capped, 3× offered, 256Mi memory limit",
        "grpc",
        "http",
        "gzip",
        sink_spans_per_s=40_000,
    ),
    Scenario(
        "hostile-mix",
        "Hostile mix: gRPC in → OTLP/HTTP gzip out while item floods and 16 MiB bodies arrive, 256Mi limit",
        "grpc",
        "http",
        "gzip",
        (AGENT,),
        hostile=True,
    ),
    *(
        Scenario(
            f"proc-{family}",
            f"Processors: {what}; gRPC in → OTLP/HTTP gzip out (compare with grpc-http-gzip)",
            "grpc",
            "http",
            "gzip",
            processors=family,
        )
        for family, what in (
            ("resource", "resource upsert"),
            ("attributes", "attribute delete + redact on every span"),
            ("filter", "filter dropping ~58% of spans"),
            ("sampling", "sampling 10% of traces"),
        )
    ),
)
#: Scenarios whose processors drop spans as configured (what never reaches the sink is not lost).
DROPPING = frozenset(s.key for s in SCENARIOS if s.processors in ("filter", "sampling"))
#: The scenario processor scenarios are compared with (same traffic, no processors).
PROCESSOR_BASELINE = "grpc-http-gzip"


@dataclass(frozen=True)
class Profile:
    name: str
    repetitions: int
    overload_repetitions: int
    warmup_s: float
    measure_s: float
    overload_warmup_s: float
    overload_measure_s: float
    workers: int = 2  # load-generator processes
    concurrency: int = 32  # in-flight requests per worker (closed loop)
    open_loop_slots: int = 64  # in-flight cap per worker (open loop)
    spans_per_request: int = 100
    # 64 distinct bodies (~3 MB) so a batch (~82 requests) never holds the same body twice: with fewer,
    # zstd finds whole repeated requests inside its window and reports a ratio no real workload gets.
    distinct_requests: int = 64


# Overload windows are long enough for the excess (2× the backend's 40k spans/s, ~40 MB/s) to reach the
# memory limit and stay there for a while.
QUICK = Profile("quick", 1, 1, 2.0, 4.0, 2.0, 6.0)
FULL = Profile("full", 5, 2, 4.0, 10.0, 3.0, 15.0)


def by_key(keys: list[str] | None) -> tuple[Scenario, ...]:
    if not keys:
        return SCENARIOS
    known = {s.key: s for s in SCENARIOS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {sorted(known)}")
    return tuple(known[k] for k in keys)
