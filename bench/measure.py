"""Resource accounting of a process tree: CPU seconds over a window, and peak RSS over a run.

CPU counts the process, every live descendant, and descendants already reaped (psutil's children_*
times), so a system that forks helpers is not flattered. Peak RSS is the maximum, over samples taken
every `interval` seconds, of the tree's summed RSS, combined with the kernel's own high-water mark
(VmHWM) of the main process, which catches spikes between samples.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psutil

MIB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their descendants (live and reaped)."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        for proc in tree(pid):
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total


def busy_cpu_seconds() -> list[float]:
    """Per CPU, seconds spent not idle since boot (everything on the machine, ours or not)."""
    return [t.user + t.nice + t.system + t.irq + t.softirq + t.steal for t in psutil.cpu_times(percpu=True)]


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def vm_hwm_bytes(pid: int) -> int:
    """The kernel's peak resident set of one process (Linux), 0 when unavailable."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process tree's RSS in a background thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        rss = rss_bytes(self.pid)
        self.peak = max(self.peak, rss, vm_hwm_bytes(self.pid))

    def stop(self) -> None:
        if self._thread.is_alive():
            self.sample()  # the final high-water mark, while the process still exists
            self._stop.set()
            self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / MIB
