"""Starting and stopping the benchmark's own processes: the sink and the load-generator workers.

Everything is a `spawn`ed multiprocessing child (no fork after grpc is loaded), pinned to the CPUs it is
given, and always torn down: `stop()` asks politely, then terminates, then kills, so a failed run leaves
no process behind.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from bench import loadgen, sink
from bench.counters import ClientCounters, SinkCounters

CTX = multiprocessing.get_context("spawn")


def _reap(processes: list[Any], timeout: float) -> None:
    for proc in processes:
        proc.join(timeout)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)


@dataclass
class Sink:
    """A running counting sink."""

    process: Any
    counters: SinkCounters
    stop_event: Any
    http_port: int
    grpc_port: int

    @classmethod
    def start(cls, config: sink.SinkConfig, timeout: float = 20.0) -> Sink:
        counters = SinkCounters.create(CTX)
        stop_event = CTX.Event()
        receive, send = CTX.Pipe(duplex=False)
        process = CTX.Process(target=sink.main, args=(config, counters, send, stop_event), daemon=True)
        process.start()
        try:
            deadline = time.monotonic() + timeout
            while not receive.poll(0.1):
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the sink did not start (exit code {process.exitcode})")
            ports = receive.recv()
        except BaseException:
            _reap([process], 0)
            raise
        return cls(process, counters, stop_event, ports["http"], ports["grpc"])

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def stop(self) -> None:
        self.stop_event.set()
        _reap([self.process], 5)


@dataclass
class LoadGenerator:
    """Running load-generator workers."""

    processes: list[Any]
    counters: list[ClientCounters]
    stop_event: Any
    results: Any
    go_event: Any
    port: Any  # the system's port, shared with the workers: known only once it is ready
    codes: dict[str, int] = field(default_factory=dict)
    unreported: int = 0  # workers that did not hand in their status counts

    @classmethod
    def start(cls, config: loadgen.LoadConfig, workers: int) -> LoadGenerator:
        """Spawn the workers (slow: done while the system starts); they send once `go(port)` is called."""
        stop_event, go_event = CTX.Event(), CTX.Event()
        port = CTX.Value("i", 0)
        results = CTX.Queue()
        counters = [ClientCounters.create(CTX) for _ in range(workers)]
        processes = [
            CTX.Process(
                target=loadgen.main,
                args=(config, counters[i], stop_event, results, i, go_event, port),
                daemon=True,
            )
            for i in range(workers)
        ]
        for proc in processes:
            proc.start()
        return cls(processes, counters, stop_event, results, go_event, port)

    def go(self, port: int) -> None:
        """Start sending, to `port` on the config's host."""
        self.port.value = port
        self.go_event.set()

    @property
    def pids(self) -> list[int]:
        return [int(proc.pid) for proc in self.processes]

    def snapshot(self) -> list[dict[str, int]]:
        return [c.snapshot() for c in self.counters]

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """Stop every worker; return the per-status counts of those that reported. Idempotent."""
        if self.stop_event.is_set():
            return self.codes
        self.stop_event.set()
        self.unreported = len(self.processes)
        for _ in self.processes:
            try:
                _, codes = self.results.get(timeout=timeout)
            except queue.Empty:
                break
            self.unreported -= 1
            for label, count in codes.items():
                self.codes[label] = self.codes.get(label, 0) + count
        _reap(self.processes, 2)
        return self.codes
