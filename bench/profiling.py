"""Where the agent's time goes: py-spy on the running agent, summarized as self and inclusive shares.

Used when a target is missed (or on request): a separate run of the scenario with py-spy sampling the
agent (all threads, native frames too, so time inside zlib, zstd or grpc's core shows up by name; py-spy
itself runs on the client's CPU) during the steady-state window; that run's figures are not reported.
The raw collapsed stacks are kept in bench/profiles/; the report shows the functions with the largest
self and inclusive shares of samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench import systems

# Leaf frames of a thread that is waiting, not working: native sampling cannot tell idle threads apart.
WAITING = (
    "epoll_wait",
    "poll",
    "select",
    "syscall",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "sem_wait",
)
LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy") or "py-spy"


def frame_name(frame: str) -> str:
    """`fn (path/to/module.py:12)` → `fn (module.py)`: aggregate over lines, keep the module."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    fn = match["fn"]
    if fn.startswith("0x"):  # an unsymbolized native frame: aggregate by library
        fn = "[native]"
    return f"{fn} ({Path(match['file']).name})"


def parse_collapsed(text: str) -> tuple[Counter[str], Counter[str], int, int]:
    """Self and inclusive samples per function, busy samples, and waiting samples left out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in text.splitlines():
        match = LINE.match(line.strip())
        if not match:
            continue
        count = int(match["count"])
        frames = [frame_name(f) for f in match["stack"].split(";") if f]
        if not frames:
            continue
        if frames[-1].split(" (", 1)[0] in WAITING:
            waiting += count
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive, total, waiting


def summarize(text: str, top: int = 15) -> dict[str, Any]:
    own, inclusive, total, waiting = parse_collapsed(text)
    denominator = total or 1
    # Thread roots and the process entry point are 100% inclusive and say nothing.
    boring = {name for name, count in inclusive.items() if count >= 0.98 * denominator}
    return {
        "samples": total,
        "waiting_samples": waiting,
        "self": [(name, count / denominator) for name, count in own.most_common(top)],
        "inclusive": [
            (name, count / denominator)
            for name, count in inclusive.most_common(top + len(boring))
            if name not in boring
        ][:top],
    }


def recorder(out: Path, rate: int, cpus: tuple[int, ...] | None) -> Any:
    """A runner probe that records the agent with py-spy for the window, into `out` (collapsed stacks)."""

    def probe(running: systems.Running, seconds: float) -> None:
        command = [
            py_spy(),
            "record",
            "--pid",
            str(running.pid),
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--duration",
            str(max(1, round(seconds))),
            "--native",
            "--output",
            str(out),
        ]
        subprocess.run(
            systems.pinned(command, cpus),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=seconds + 30,
        )

    return probe
