"""The systems under test: how to configure, start, await and stop our agent and rotel.

Both get the same job — receive OTLP on loopback, batch (8192 items / 200 ms), export to the sink with a
given protocol and compression — and run in their own process group pinned to the given CPUs (`taskset`,
so every thread they ever start inherits the placement). `stop()` sends SIGTERM to the group, waits, then
SIGKILLs it: no run leaves a process behind.

No port is guessed (a port probed free can be taken before the system binds it, by another run on a shared
machine): each system binds port 0 and `wait_ready` learns the ports it got — the agent names them in its
ready file (`otlp-agent run --any-free-port --ready-file`); rotel cannot say, so its two receivers listen
on two loopback addresses and the kernel is asked which port each got. A "backend that is down" is a
`RefusingPort`: a bound socket that never listens, so connections are refused and nobody else takes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench import processors

AGENT, ROTEL = "agent", "rotel"
BATCH_ITEMS, BATCH_TIMEOUT_MS = 8192, 200
SHUTDOWN_GRACE_S = 5
STOP_TIMEOUT_S = SHUTDOWN_GRACE_S + 10  # after this, SIGKILL (and the run reports an unclean exit)
#: rotel's receivers (it fails when both endpoints are the same string, and cannot report its ports).
ROTEL_GRPC_HOST, ROTEL_HTTP_HOST = "127.0.0.1", "127.0.0.2"


@dataclass(frozen=True)
class Job:
    """What a system must do in one run."""

    egress_protocol: str  # "http" | "grpc"
    compression: str  # "gzip" | "zstd" | "none"
    sink_port: int
    memory_limit_mib: int = 256
    spike_limit_mib: int = 64
    tenants: str | None = None  # see Scenario.tenants
    dead_port: int | None = None  # where team B's exporter points when its backend is down
    processors: str | None = None  # a family of bench/processors.py


@dataclass(frozen=True)
class Ports:
    """Where a started system listens (learned once it is ready)."""

    grpc: int
    http: int
    telemetry: int | None = None  # the agent's /metrics; rotel has none here


class RefusingPort:
    """A loopback port held by a bound socket that never listens: connections to it are refused at once,
    as with a backend that is down, and no other process can take the port while it is held."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])

    def close(self) -> None:
        self._socket.close()


def rotel_binary() -> str:
    """The rotel-agent executable shipped inside the `rotel` wheel."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        raise RuntimeError("rotel is not installed: .venv/bin/pip install rotel")
    binary = Path(spec.origin).parent / "rotel-agent"
    if not binary.exists():
        raise RuntimeError(f"rotel-agent not found next to {spec.origin}")
    return str(binary)


def agent_binary() -> str:
    found = Path(sys.executable).parent / "otlp-agent"
    return str(found) if found.exists() else shutil.which("otlp-agent") or "otlp-agent"


def agent_config(job: Job) -> dict[str, Any]:
    """The OTLPPipeline our agent runs for this job."""
    if job.egress_protocol == "http":
        exporter = {"endpoint": f"http://127.0.0.1:{job.sink_port}", "protocol": "http/protobuf"}
    else:
        exporter = {"endpoint": f"127.0.0.1:{job.sink_port}", "protocol": "grpc", "tls": {"insecure": True}}
    exporter.update(name="sink", compression=job.compression)
    routing = _tenants(job, exporter) if job.tenants else {"exporters": [exporter]}
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "bench"},
        "spec": {
            "receivers": {"otlp": {"grpc": {}, "http": {}}},  # on ports the OS picks: see agent_command
            "processors": {
                "memoryLimiter": {
                    "limit": f"{job.memory_limit_mib}Mi",
                    "spikeLimit": f"{job.spike_limit_mib}Mi",
                },
                "batch": {"maxItems": BATCH_ITEMS, "timeout": f"{BATCH_TIMEOUT_MS}ms"},
                **(processors.AGENT[job.processors] if job.processors else {}),
            },
            **routing,
            "telemetry": {"logLevel": "warning"},
            # Bounded drain on SIGTERM, so a run against a throttled backend ends in seconds.
            "lifecycle": {"shutdownGracePeriod": f"{SHUTDOWN_GRACE_S}s"},
        },
    }


def _tenants(job: Job, sink: dict[str, Any]) -> dict[str, Any]:
    """Two exporters, team-a and team-b, and routes on the resource attribute `team`; team B's exporter
    points at `dead_port` (with a queue that fills fast) when its backend is down."""
    team_b = {**sink, "name": "team-b"}
    if job.tenants == "b-down":
        team_b.update(endpoint=f"http://127.0.0.1:{job.dead_port}", protocol="http/protobuf")
        team_b.pop("tls", None)
        team_b["queue"] = {"maxBytes": "4Mi"}
    return {
        "exporters": [{**sink, "name": "team-a"}, team_b],
        "routes": {
            "rules": [
                {
                    "name": f"team-{t}",
                    "match": [{"attribute": "team", "equals": t}],
                    "exporters": [f"team-{t}"],
                }
                for t in ("a", "b")
            ]
        },
    }


def agent_command(config_path: Path, ready_file: Path) -> list[str]:
    """The agent on ports the OS picks, named in `ready_file` once it is ready."""
    return [
        agent_binary(), "run", "--config", str(config_path), "--listen-host", "127.0.0.1",
        "--any-free-port", "--ready-file", str(ready_file),
    ]  # fmt: skip


def rotel_command(job: Job, workdir: Path) -> list[str]:
    """rotel with the same receivers, batch settings, exporter protocol and compression as the agent."""
    if job.compression not in ("gzip", "none"):
        raise ValueError(f"rotel cannot compress with {job.compression}")
    return [
        rotel_binary(),
        "start",
        "--otlp-grpc-endpoint",
        f"{ROTEL_GRPC_HOST}:0",
        "--otlp-http-endpoint",
        f"{ROTEL_HTTP_HOST}:0",
        "--otlp-grpc-max-recv-msg-size-mib",
        "64",
        "--batch-max-size",
        str(BATCH_ITEMS),
        "--batch-timeout",
        f"{BATCH_TIMEOUT_MS}ms",
        "--exporter",
        "otlp",
        "--otlp-exporter-endpoint",
        f"http://127.0.0.1:{job.sink_port}",
        "--otlp-exporter-protocol",
        job.egress_protocol,
        "--otlp-exporter-compression",
        job.compression,
        "--pid-file",
        str(workdir / "rotel.pid"),
        "--log-file",
        str(workdir / "rotel.log"),
        *(
            ["--otlp-with-trace-processor", processors.rotel_processor(job.processors)]
            if job.processors
            else []
        ),
    ]


def pinned(command: list[str], cpus: tuple[int, ...] | None) -> list[str]:
    if cpus is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", ",".join(map(str, cpus)), *command]


@dataclass
class Running:
    """A started system: its process (pid = the system itself, taskset execs it), where it logs, and (once
    `wait_ready` returned) where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    job: Job
    log_path: Path
    config_path: Path | None = None
    ready_file: Path | None = None  # the agent's
    ports: Ports | None = None
    exit_code: int | None = field(default=None)

    @property
    def listening(self) -> Ports:
        assert self.ports is not None, "wait_ready() first"
        return self.ports

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the process group, wait up to `grace`, then SIGKILL it. Returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # stragglers in the group, even after a clean exit
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.exit_code = self.process.returncode
        return self.exit_code


def start(
    name: str, job: Job, workdir: Path, cpus: tuple[int, ...] | None, wrap: list[str] | None = None
) -> Running:
    """Start `name` (agent or rotel) for `job`; `wrap` prefixes the command (e.g. a profiler)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = ready_file = None
    if name == AGENT:
        config_path = workdir / "pipeline.yaml"
        config_path.write_text(yaml.safe_dump(agent_config(job), sort_keys=False))
        ready_file = workdir / "ready.json"
        ready_file.unlink(missing_ok=True)
        command = agent_command(config_path, ready_file)
    else:
        command = rotel_command(job, workdir)
    log_path = workdir / f"{name}.out"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*(wrap or []), *pinned(command, cpus)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() reaches every child
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Running(name, process, job, log_path, config_path, ready_file)


def ingress_host(system: str, ingress: str) -> str:
    """The address `system` receives `ingress` ("grpc", "http", "http-json") on."""
    return ROTEL_HTTP_HOST if system == "rotel" and ingress != "grpc" else "127.0.0.1"  # agent_command's


def _agent_ports(ready_file: Path) -> Ports | None:
    """The ports in the agent's ready file (written once every listener is up), None until it exists."""
    try:
        ports = json.loads(ready_file.read_text())["ports"]
    except FileNotFoundError:
        return None
    return Ports(ports["grpc"], ports["http"], ports["telemetry"])


def _rotel_ports(pid: int) -> Ports | None:
    """rotel's receiver ports, read from the kernel, once it listens on both addresses."""
    listening = {
        connection.laddr.ip: connection.laddr.port
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN
    }
    if {ROTEL_GRPC_HOST, ROTEL_HTTP_HOST} <= listening.keys():
        return Ports(listening[ROTEL_GRPC_HOST], listening[ROTEL_HTTP_HOST])
    return None


def wait_ready(running: Running, timeout: float = 30.0) -> Ports:
    """Until the system accepts data (the agent's ready file; rotel listening on both receivers); the ports
    it listens on, also kept in `running.ports`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running.alive():
            raise RuntimeError(
                f"{running.name} exited with {running.process.returncode}:\n{running.log_tail()}"
            )
        ports = None
        if running.ready_file is not None:
            ports = _agent_ports(running.ready_file)
        else:
            with contextlib.suppress(psutil.Error):  # (it may exit between the check and the look)
                ports = _rotel_ports(running.pid)
        if ports is not None:
            running.ports = ports
            return ports
        time.sleep(0.1)
    raise RuntimeError(f"{running.name} not ready after {timeout}s:\n{running.log_tail()}")


#: The agent's own metrics and those it shares with the OpenTelemetry Collector.
AGENT_PREFIXES = ("otlp_agent_", "otelcol_")


def scrape_metrics(port: int, prefix: str | tuple[str, ...] = AGENT_PREFIXES) -> dict[str, float] | None:
    """Every sample on the agent's /metrics whose name starts with `prefix` (histogram buckets left out),
    keyed by the series as written (`name{labels}`); None when /metrics cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    return parse_metrics(text, prefix)


def parse_metrics(text: str, prefix: str | tuple[str, ...]) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if not line.startswith(prefix) or "_bucket{" in line or "_created" in line:
            continue
        series, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[series] = float(value)
    return samples


def metric_sum(samples: dict[str, float] | None, name: str) -> float | None:
    """Sum over every series of metric `name` (all label sets)."""
    if samples is None:
        return None
    values = [v for series, v in samples.items() if series == name or series.startswith(name + "{")]
    return sum(values) if values else None
