"""Bench results aggregate into medians, spreads, ratios and verdicts, and render to JSON, Markdown, PNG."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench import payloads, profiling, report, runner, scenarios, stats, systems


def run(scenario, system, spans_per_s, cpu_per_m, rss=100.0, **extra):
    client = {"accepted_spans": 1000, "retryable": 0, "non_retryable": 0, "transport_errors": 0}
    client.update(extra.pop("client", {}))
    base = {
        "scenario": scenario,
        "system": system,
        "spans_per_s": spans_per_s,
        "cpu_s_per_million_spans": cpu_per_m,
        "spans_per_cpu_s": 1e6 / cpu_per_m,
        "peak_rss_mib": rss,
        "wire_bytes_per_span": 60.0,
        "cpu_util": 0.97,
        "client_side_cpu_util": 0.5,
        "client_total": client,
        "status_counts": {"grpc:OK": 10},
        "crashed": False,
        "exit_code": 0,
        "accepted_not_delivered_spans": 0,
    }
    base.update(extra)
    return base


RUNS = [
    run("grpc-http-gzip", "agent", 200_000, 5.0),
    run("grpc-http-gzip", "rotel", 100_000, 10.0),
    run("grpc-http-gzip", "agent", 220_000, 4.0),
    run("grpc-http-gzip", "rotel", 110_000, 9.0),
    run("grpc-http-gzip", "agent", 210_000, 4.5),
    run("grpc-http-zstd", "agent", 240_000, 3.5),
    run("overload", "agent", 40_000, 20.0, rss=180.0, client={"retryable": 30, "retry_hint": 30}),
    run("overload", "rotel", 40_000, 25.0, rss=450.0),
]


def test_window_numbers_come_from_the_sink_and_the_system_cpu():
    sink_d = {"spans": 2_000_000, "wire_bytes": 120_000_000, "decoded_bytes": 960_000_000, "requests": 250}
    client_d = {"accepted_spans": 2_010_000, "sent": 20_100, "not_sent": 0}
    numbers = runner.window_numbers(sink_d, client_d, cpu_s=9.0, client_cpu_s=5.0, seconds=10.0)
    assert numbers["spans_per_s"] == 200_000
    assert numbers["cpu_s_per_million_spans"] == pytest.approx(4.5)
    assert numbers["wire_bytes_per_span"] == 60
    assert numbers["compression_ratio"] == 8
    assert numbers["cpu_util"] == pytest.approx(0.9)
    assert numbers["mean_export_spans"] == 8000


def test_requests_answered_count_refusals_too_and_give_the_cpu_per_request():
    # tenants-b-down: every request refused for team B, the sink sees only team A's first copies
    sink_d = {"spans": 0, "wire_bytes": 0, "decoded_bytes": 0, "requests": 0}
    client_d = {
        "accepted": 0,
        "accepted_spans": 0,
        "retryable": 9_000,
        "non_retryable": 1_000,
        "sent": 10_000,
    }
    client_d["not_sent"] = 0
    numbers = runner.window_numbers(sink_d, client_d, cpu_s=2.0, client_cpu_s=1.0, seconds=10.0)
    assert numbers["answered_requests_per_s"] == 1_000
    assert numbers["cpu_us_per_request"] == pytest.approx(200)


def test_two_team_bodies_hold_one_resource_per_team_and_half_the_spans_each():
    [body] = payloads.build_two_team_bodies(1, spans=100)
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    teams = [
        {kv.key: kv.value.string_value for kv in rs.resource.attributes}["team"]
        for rs in request.resource_spans
    ]
    assert teams == ["a", "b"]
    assert [len(rs.scope_spans[0].spans) for rs in request.resource_spans] == [50, 50]


def test_nothing_delivered_gives_no_per_span_figures():
    sink_d = {"spans": 0, "wire_bytes": 0, "decoded_bytes": 0, "requests": 0}
    numbers = runner.window_numbers(sink_d, {"accepted_spans": 0, "sent": 0, "not_sent": 0}, 1.0, 1.0, 5.0)
    assert numbers["cpu_s_per_million_spans"] is None
    assert numbers["wire_bytes_per_span"] is None


def test_median_and_spread():
    assert stats.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "rel_spread": 1.0, "n": 3}
    assert stats.spread([None, 4.0])["median"] == 4.0
    assert stats.spread([])["median"] is None


def test_a_median_of_zero_is_shown_without_a_relative_spread():
    """Team B down: nothing new reaches the sink in any repetition, and the page still renders."""
    assert report.fmt_spread(stats.spread([0.0, 0.0, 0.0])) == "0 (0–0)"
    assert report.fmt_spread(stats.spread([0.0, 10.0, 0.0])) == "0 (0–10)"
    assert report.fmt_spread(stats.spread([1.0, 2.0, 3.0])) == "2 (1–3, ±50%)"


def test_a_study_reports_the_whole_run_in_the_middle_of_one_figure():
    runs = [{"cpu": 3.0, "spans": 1}, {"cpu": None, "spans": 2}, {"cpu": 2.0, "spans": 3}]
    assert stats.median_run(runs, "cpu") == {"cpu": 2.0, "spans": 3}  # None orders as 0


def test_summary_has_medians_ratios_and_verdicts():
    summary = stats.summarize(RUNS, list(scenarios.SCENARIOS))
    head = summary["grpc-http-gzip"]
    assert head["systems"]["agent"]["spans_per_s"] == 210_000
    assert head["systems"]["agent"]["cpu_s_per_million_spans"] == 4.5
    assert head["systems"]["rotel"]["runs"] == 2
    assert head["ratios"]["spans_per_cpu_s"] == pytest.approx((1e6 / 4.5) / ((1e6 / 10 + 1e6 / 9) / 2))
    assert summary["grpc-http-zstd"]["ratios"] is None  # ours only
    verdicts = stats.targets(summary)
    assert verdicts["head_to_head_efficiency"]["met"] is True
    assert verdicts["zstd_throughput"]["met"] is False  # 240k < 250k
    assert verdicts["overload"]["met"] is True
    assert verdicts["overload"]["measured"]["refused_retryable"] == 30


def test_overload_fails_on_a_non_retryable_refusal_or_rss_over_the_limit():
    bad = [run("overload", "agent", 40_000, 20.0, rss=300.0, client={"non_retryable": 1})]
    verdict = stats.targets(stats.summarize(bad, list(scenarios.SCENARIOS)))["overload"]
    assert verdict["met"] is False
    assert verdict["measured"]["worst_peak_rss_mib"] == 300.0


def test_findings_flag_lost_data_and_a_saturated_client():
    runs = [
        run(
            "grpc-http-gzip",
            "agent",
            100_000,
            5.0,
            accepted_not_delivered_spans=500,
            client_side_cpu_util=0.95,
        ),
    ]
    notes = stats.findings(stats.summarize(runs, list(scenarios.SCENARIOS)))
    assert any("never reached the sink" in note for note in notes)
    assert any("client core was saturated" in note for note in notes)


def test_findings_tell_a_processors_drops_from_lost_data():
    runs = [run("proc-sampling", "agent", 10_000, 8.0, accepted_not_delivered_spans=900)]
    notes = stats.findings(stats.summarize(runs, list(scenarios.SCENARIOS)))
    assert any("dropped by the processor, as configured" in note for note in notes)
    assert not any("never reached the sink" in note for note in notes)


def test_findings_flag_a_system_that_answered_nothing():
    """A load that never reached the system (rotel's HTTP receiver has its own address) is no measurement."""
    runs = [
        run("http-grpc-none", "rotel", 0, 1.0, client={"sent": 900, "accepted": 0, "transport_errors": 900})
    ]
    notes = stats.findings(stats.summarize(runs, list(scenarios.SCENARIOS)))
    assert any("answered none of the 900 requests" in note for note in notes)


def test_the_load_goes_where_each_system_listens():
    assert systems.ingress_host("rotel", "http") == systems.ROTEL_HTTP_HOST != "127.0.0.1"
    assert systems.ingress_host("rotel", "grpc") == systems.ROTEL_GRPC_HOST
    assert systems.ingress_host("agent", "http") == systems.ingress_host("agent", "grpc") == "127.0.0.1"


def test_report_writes_json_markdown_and_plot(tmp_path):
    summary = stats.summarize(RUNS, list(scenarios.SCENARIOS))
    document = {
        "meta": {
            "mode": "quick",
            "started": "2025-01-01 00:00 UTC",
            "command": "python -m bench.run --quick",
            "commit": "abc1234",
            "load_average_at_start": [0.1, 0.2, 0.3],
            "machine": {"cpu_model": "Test CPU", "cpus": 2, "kernel": "6.1", "python": "3.11.7"},
            "placement": {"pinned": True, "system_cpus": [0], "client_and_sink_cpus": [1]},
            "versions": {"grpcio": "1.0"},
            "estimated_full_minutes": 9.0,
            "method": ["one line"],
        },
        "targets": stats.targets(summary),
        "findings": ["a note"],
        "scenarios": summary,
        "profiles": {},
        "errors": [],
        "runs": RUNS,
    }
    results = tmp_path / "results.json"
    report.write_all(document, results, tmp_path / "docs")
    loaded = json.loads(results.read_text())
    assert loaded["scenarios"]["grpc-http-gzip"]["systems"]["rotel"]["spans_per_s"] == 105_000
    page = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "make bench BENCH_QUICK=1" in page
    assert "210,000 (200,000–220,000" in page
    assert "CPU [0]" in page and "Test CPU" in page
    assert "**MISSED**" in page  # the zstd target
    assert "a note" in page
    png = (tmp_path / "docs" / "img" / report.PLOT_NAME).read_bytes()
    assert png.startswith(b"\x89PNG")


def test_profile_summary_ranks_self_and_inclusive_time():
    collapsed = "\n".join(
        [
            "run (app.py:1);serve (server.py:10);compress (codec.py:5) 60",
            "run (app.py:1);serve (server.py:11);count (wire.py:7) 30",
            "run (app.py:1);0x7f01 (libz.so.1);0x7f02 (libz.so.1) 4",
            "run (app.py:1);0x7f03 (libz.so.1) 6",
            "run (app.py:1);select (selectors.py:5);epoll_wait (libc.so.6) 50",
        ]
    )
    summary = profiling.summarize(collapsed)
    assert summary["samples"] == 100
    assert summary["waiting_samples"] == 50  # idle threads are not "where the time goes"
    assert summary["self"][0] == ("compress (codec.py)", 0.6)
    assert summary["inclusive"][0] == ("serve (server.py)", 0.9)  # `run` is 100%: left out as noise
    assert ("[native] (libz.so.1)", 0.1) in summary["self"]  # addresses aggregate per library


def test_agent_config_matches_the_job_and_rotel_gets_the_same_batching(tmp_path):
    job = systems.Job("http", "zstd", 9000, memory_limit_mib=128, spike_limit_mib=32)
    spec = systems.agent_config(job)["spec"]
    assert spec["exporters"][0] == {
        "endpoint": "http://127.0.0.1:9000",
        "protocol": "http/protobuf",
        "name": "sink",
        "compression": "zstd",
    }
    assert spec["processors"]["memoryLimiter"] == {"limit": "128Mi", "spikeLimit": "32Mi"}
    assert spec["processors"]["batch"] == {"maxItems": 8192, "timeout": "200ms"}
    gzip_job = systems.Job("grpc", "gzip", 9000)
    command = systems.rotel_command(gzip_job, tmp_path)
    flags = dict(zip(command[2::2], command[3::2], strict=False))
    assert command[1] == "start"
    assert flags["--batch-max-size"] == "8192" and flags["--batch-timeout"] == "200ms"
    assert flags["--otlp-exporter-protocol"] == "grpc"
    assert flags["--otlp-exporter-compression"] == "gzip"
    with pytest.raises(ValueError):
        systems.rotel_command(job, tmp_path)  # rotel cannot zstd


def test_metrics_are_parsed_and_summed_over_label_sets():
    text = "\n".join(
        [
            "# HELP otlp_agent_refused_items_total Items refused.",
            'otlp_agent_refused_items_total{signal="traces",transport="grpc"} 300.0',
            'otlp_agent_refused_items_total{signal="traces",transport="http"} 200.0',
            'otelcol_processor_batch_batch_send_size_bucket{le="10"} 4.0',
            "other_metric 1.0",
        ]
    )
    samples = systems.parse_metrics(text, "otlp_agent_")
    assert len(samples) == 2
    assert systems.metric_sum(samples, "otlp_agent_refused_items_total") == 500.0
    assert systems.metric_sum(samples, "otlp_agent_missing") is None


def test_agent_drop_counters_and_foreign_load_reach_the_findings():
    metrics = {
        'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"}': 1000.0,
        'otlp_agent_dropped_items_total{exporter="sink",reason="queue_full",signal="traces"}': 400.0,
    }
    runs = [
        run("overload", "agent", 40_000, 20.0, agent_metrics=metrics, foreign_cpu_util={"system_cpu": 0.3}),
        run("overload", "agent", 40_000, 20.0, agent_metrics=metrics, foreign_cpu_util={"system_cpu": 0.05}),
    ]
    summary = stats.summarize(runs, list(scenarios.SCENARIOS))
    agent = summary["overload"]["systems"]["agent"]
    assert agent["agent_counters"]["received"] == 2000
    assert agent["agent_counters"]["dropped_by_reason"] == {"queue_full": 800}
    assert agent["foreign_load_on_system_cpu"] == 0.3
    notes = stats.findings(summary)
    assert any("800 dropped items" in note for note in notes)
    assert any("30% busy" in note for note in notes)
