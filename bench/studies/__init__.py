"""Studies: measurements of one part of the agent in-process (a converter, a codec chooser, a batcher, an
exporter's connection pool), beside the scenarios that run whole systems.

A study is plain data (key, title, what it measures) plus `run(quick)`, returning a JSON-ready dict with its
rows, its verdict against a target when it has one, and notes. Each study runs in a fresh `spawn`ed
process pinned to the system CPU, so the benchmark process's own imports and garbage do not disturb it.
`--scenario KEY` selects studies like scenarios.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import traceback
from dataclasses import dataclass
from typing import Any

CTX = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    module: str  # bench.studies.<module> has run(quick: bool) -> dict and markdown(result) -> list[str]
    minutes_full: float  # how long a full run takes, for the estimate


STUDIES = (
    Study(
        "json-ingest",
        "OTLP/JSON ingest per core: the agent's converter against json_format",
        "json_ingest",
        1,
    ),
    Study(
        "compression-auto", "compression auto against fixed codecs, two payload shapes", "compression_auto", 3
    ),
    Study(
        "connections", "Connection pools against a backend with per-connection latency", "connections", 1.5
    ),
    Study(
        "adaptive-batching", "batch.timeout auto against 200ms, at 1% and 100% load", "adaptive_batching", 2.5
    ),
    Study(
        "load-balancing",
        "An agent balancing over 3 gateway agents by trace id, against round robin",
        "load_balancing",
        2.5,
    ),
)


def keys() -> set[str]:
    return {study.key for study in STUDIES}


def by_key(wanted: list[str] | None) -> tuple[Study, ...]:
    if wanted is None:
        return STUDIES
    return tuple(study for study in STUDIES if study.key in wanted)


def _child(module: str, quick: bool, cpus: tuple[int, ...] | None) -> dict[str, Any]:
    if cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    result: dict[str, Any] = importlib.import_module(f"bench.studies.{module}").run(quick)
    return result


def _entry(module: str, quick: bool, cpus: tuple[int, ...] | None, results: Any) -> None:
    try:
        results.put(("ok", _child(module, quick, cpus)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def run(study: Study, quick: bool, cpus: tuple[int, ...] | None, timeout: float = 1800) -> dict[str, Any]:
    """Run one study in its own process; raises RuntimeError with the child's traceback if it failed."""
    results = CTX.Queue()
    # Not a daemon: a study may start processes of its own (a sink).
    process = CTX.Process(target=_entry, args=(study.module, quick, cpus, results), daemon=False)
    process.start()
    try:
        status, value = results.get(timeout=timeout)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    if status != "ok":
        raise RuntimeError(f"study {study.key} failed:\n{value}")
    return {"title": study.title, **value}


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The verdicts studies report (a study without a target reports none)."""
    return {key: result["target"] for key, result in results.items() if result.get("target")}


def markdown(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    lines = ["## Studies", ""]
    for study in STUDIES:
        if study.key in results:
            module = importlib.import_module(f"bench.studies.{study.module}")
            lines += [
                f"### {results[study.key]['title']} (`{study.key}`)",
                "",
                *module.markdown(results[study.key]),
            ]
            lines += [*[f"- {note}" for note in results[study.key].get("notes", [])], ""]
    return lines
