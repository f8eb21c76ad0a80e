"""Bench studies: `--scenario` picks studies and scenarios by key, a study's verdict joins the targets, and
each study renders its tables into the report (from a results document; nothing is measured here)."""

from __future__ import annotations

import pytest

from bench import run, studies
from bench.studies import compression_auto


def test_scenario_keys_select_studies_and_system_scenarios_alike() -> None:
    systems, chosen = run.select(["grpc-http-zstd", "json-ingest", "connections"])
    assert [s.key for s in systems] == ["grpc-http-zstd"]
    assert [s.key for s in chosen] == ["json-ingest", "connections"]
    only_study = run.select(["compression-auto"])
    assert only_study[0] == () and [s.key for s in only_study[1]] == ["compression-auto"]
    everything = run.select(None)
    assert {s.key for s in everything[1]} == studies.keys()


def test_an_unknown_key_names_every_choice() -> None:
    with pytest.raises(SystemExit, match="adaptive-batching"):
        run.select(["no-such-thing"])


def spread(median: float) -> dict[str, float]:
    return {"median": median, "min": median, "max": median, "rel_spread": 0.0, "n": 1}


RESULTS = {
    "json-ingest": {
        "title": "json",
        "rows": [
            {"converter": "agent", "spans_per_cpu_s": spread(70_000), "body_bytes_per_span": 988},
            {"converter": "json_format", "spans_per_cpu_s": spread(7_000), "body_bytes_per_span": 1065},
        ],
        "speedup_over_json_format": 10.0,
        "target": {"met": True, "measured": 70_000.0, "target": "≥ 50,000"},
        "notes": ["a note"],
    },
    "compression-auto": {
        "title": "auto",
        "shapes": {
            "traces": {
                codec: {"cpu_s_per_gb": cpu, "wire_fraction": frac, "chosen": "zstd"}
                for codec, cpu, frac in (("none", 0.5, 1.0), ("zstd", 1.5, 0.1), ("auto", 1.6, 0.1))
            }
        },
        "checks": {"traces": {"best_fixed": "zstd", "cpu_ratio": 1.07, "bytes_ratio": 1.0, "met": True}},
        "target": {"met": True, "measured": {}, "target": "within 10%"},
    },
    "connections": {
        "title": "pools",
        "rows": [
            {
                "connections": 4,
                "spans_per_s": 150_000.0,
                "cpu_s_per_million_spans": 1.3,
                "latency_p50_ms": 48.0,
                "latency_p99_ms": 70.0,
                "connections_opened": 4.0,
            }
        ],
    },
    "adaptive-batching": {
        "title": "batching",
        "rows": [
            {
                "load": "1%",
                "timeout": "auto",
                "latency_p50_ms": 31.0,
                "latency_p99_ms": 40.0,
                "spans_per_s": 1000.0,
                "cpu_s_per_million_spans": 18.0,
                "exports_per_s": 10.0,
                "mean_batch_spans": 100.0,
            }
        ],
    },
    "load-balancing": {
        "title": "balancing",
        "rows": [
            {
                "routing_key": key,
                "spans_per_s": 60_000.0,
                "cpu_s_per_million_spans": cpu,
                "spans_per_gateway": [100, 110, 120],
                "traces": 1280,
                "traces_on_several_gateways": several,
            }
            for key, cpu, several in (("roundRobin", 6.5, 1280), ("traceID", 7.5, 0))
        ],
        "extra_cpu_s_per_million_spans": 1.0,
        "target": {"met": True, "measured": {"traces on several gateways": 0}, "target": "one gateway"},
    },
}


def test_study_targets_join_the_report_and_every_study_renders() -> None:
    assert set(studies.targets(RESULTS)) == {"json-ingest", "compression-auto", "load-balancing"}
    page = "\n".join(studies.markdown(RESULTS))
    assert "| agent | 70,000 | 988 |" in page
    assert "10.0× faster than json_format" in page
    assert "best fixed codec by the objective: **zstd**" in page and "CPU 1.07×" in page
    assert "| 4 | 150,000 | 1.30 | 48.0 / 70.0 | 4 |" in page
    assert "| 1% | auto | 31.0 / 40.0 |" in page
    assert "| traceID | 60,000 | 7.50 | 100 / 110 / 120 | 1,280 | 0 |" in page
    assert "Extra CPU of the split (traceID − roundRobin): 1.00 CPU-s per million spans." in page
    assert "- a note" in page


def test_the_best_fixed_codec_is_what_the_objective_picks_from_the_fixed_runs() -> None:
    rows = {
        "none": {"cpu_s_per_gb": 0.5, "wire_fraction": 1.0},
        "gzip": {"cpu_s_per_gb": 1.2, "wire_fraction": 0.125},
        "zstd": {"cpu_s_per_gb": 1.5, "wire_fraction": 0.105},
    }
    assert compression_auto.best_fixed(rows) == "zstd"
    incompressible = {**rows, "gzip": {"cpu_s_per_gb": 4.0, "wire_fraction": 0.995}}
    incompressible["zstd"] = {"cpu_s_per_gb": 1.7, "wire_fraction": 1.0}
    assert compression_auto.best_fixed(incompressible) == "none"
