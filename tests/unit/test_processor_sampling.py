"""Sampling by the OpenTelemetry specification's thresholds and randomness: the spec's own table, the same
decisions and `th` as the official Python SDK's consistent sampler, tracestate handling, and log records
decided alike by every agent with the same seed."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace._sampling_experimental import composable_traceid_ratio_based, composite_sampler
from opentelemetry.sdk.trace.sampling import Decision
from otlp_agent.api import spec
from otlp_agent.pipeline.processors import sampling


def sampler(ratio: float, **fields: object) -> sampling.TraceSampler:
    return sampling.TraceSampler(spec.Sampling(ratio=ratio, **fields))


# "TraceState: Probability Sampling", Algorithms: thresholds for 1-in-N at precision 3, 4 and 5.
SPEC_TABLE = [
    (1, ("0", "0", "0")),
    (2, ("8", "8", "8")),
    (3, ("aab", "aaab", "aaaab")),
    (4, ("c", "c", "c")),
    (5, ("ccd", "cccd", "ccccd")),
    (10, ("e66", "e666", "e6666")),
    (100, ("fd71", "fd70a", "fd70a4")),
    (1000, ("ffbe7", "ffbe77", "ffbe76d")),
    (10000, ("fff972", "fff9724", "fff97247")),
    (1000000, ("ffffef4", "ffffef39", "ffffef391")),
]


@pytest.mark.parametrize(("one_in", "expected"), SPEC_TABLE, ids=[f"1-in-{n}" for n, _ in SPEC_TABLE])
def test_thresholds_are_the_specifications_table(one_in: int, expected: tuple[str, str, str]) -> None:
    got = tuple(sampling.encode(sampling.threshold(1 / one_in, precision)) for precision in (3, 4, 5))
    assert got == expected


@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.1, 1 / 3, 0.01])
def test_decisions_and_th_equal_the_python_sdks_consistent_sampler(ratio: float) -> None:
    sdk = composite_sampler(composable_traceid_ratio_based(ratio))
    ours = sampler(ratio, precision=14)  # the SDK computes exact thresholds
    rng = random.Random(7)
    kept = 0
    for _ in range(2000):
        trace_id = rng.getrandbits(128) or 1
        result = sdk.should_sample(None, trace_id, "span")
        decision, state = ours.decide(trace_id.to_bytes(16, "big"), "")
        assert decision == (result.decision == Decision.RECORD_AND_SAMPLE)
        if decision:
            kept += 1
            assert state == f"ot={result.trace_state.get('ot')}"
    assert abs(kept / 2000 - ratio) < 0.05


def test_the_agent_keeps_exactly_what_the_sdk_at_the_product_ratio_keeps_after_the_sdk_sampled() -> None:
    """An SDK sampling at 50% and the agent at 20% (proportional) give the traces an SDK at 10% keeps."""
    sdk_half = composite_sampler(composable_traceid_ratio_based(0.5))
    sdk_tenth = composite_sampler(composable_traceid_ratio_based(0.1))
    agent = sampler(0.2, precision=14)
    rng = random.Random(11)
    for _ in range(3000):
        trace_id = rng.getrandbits(128) or 1
        first = sdk_half.should_sample(None, trace_id, "span")
        if first.decision != Decision.RECORD_AND_SAMPLE:
            continue
        state = ",".join(f"{k}={v}" for k, v in first.trace_state.items())
        kept, new_state = agent.decide(trace_id.to_bytes(16, "big"), state)
        direct = sdk_tenth.should_sample(None, trace_id, "span")
        assert kept == (direct.decision == Decision.RECORD_AND_SAMPLE)
        if kept:
            assert new_state == f"ot={direct.trace_state.get('ot')}"


def test_rv_is_the_randomness_when_present_and_is_kept() -> None:
    low_id = bytes(15) + b"\x01"  # the trace id alone would be dropped at any ratio below 1
    kept, state = sampler(0.5).decide(low_id, "ot=rv:f0000000000000")
    assert (kept, state) == (True, "ot=th:8;rv:f0000000000000")
    assert sampler(0.5).decide(b"\xff" * 16, "ot=rv:10000000000000") == (False, None)


def test_an_inconsistent_incoming_threshold_is_erased_and_a_consistent_one_combined() -> None:
    high = b"\x00" * 9 + b"\xf8" + b"\x00" * 6  # randomness 0xf8000000000000
    # th:fc says the span was kept with R >= 0xfc...: false for this R, so it is ignored.
    assert sampler(0.5).decide(high, "ot=th:fc") == (True, "ot=th:8")
    # proportional: 50% of 25% is 12.5% (th:e); equalizing: max(25%, 50%) keeps th:c.
    assert sampler(0.5).decide(high, "ot=th:c") == (True, "ot=th:e")
    assert sampler(0.5, mode="equalizing").decide(high, "ot=th:c") == (True, "ot=th:c")


def test_other_vendors_entries_and_ot_subkeys_are_kept_with_ot_moved_first() -> None:
    trace_id = b"\x00" * 9 + b"\xff" * 7
    kept, state = sampler(0.25).decide(trace_id, "congo=t61rcWkgMzE, ot=th:0;zz:1 ,rojo=00f067aa0ba902b7")
    assert kept
    assert state == "ot=th:c;zz:1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def test_spans_without_randomness_are_dropped() -> None:
    assert sampler(0.99).decide(bytes(16), "") == (None, None)
    assert sampler(0.99).decide(b"short", "ot=th:0") == (None, None)


def test_spans_without_tracestate_are_decided_as_spans_with_only_other_vendors_entries() -> None:
    """The no-tracestate shortcut decides and writes what the general path does."""
    ours = sampler(0.3)
    rng = random.Random(11)
    ids = [rng.randbytes(16) for _ in range(500)] + [b"\x01" + bytes(15), bytes(9) + b"\xff" * 7]
    for trace_id in ids:
        plain, other = ours.decide(trace_id, ""), ours.decide(trace_id, "vendor=x")
        assert plain[0] == other[0]
        assert plain[1] == (None if other[1] is None else other[1].removesuffix(",vendor=x"))


def test_a_ratio_of_zero_keeps_nothing() -> None:
    assert sampler(0.0).decide(b"\xff" * 16, "") == (False, None)


def test_log_records_with_a_trace_id_follow_their_trace() -> None:
    logs = sampling.LogSampler(spec.Sampling(ratio=0.3, signals=["logs"], precision=14))
    spans = sampler(0.3, precision=14)
    rng = random.Random(3)
    for _ in range(500):
        trace_id = rng.randbytes(16)
        assert logs.keeps(trace_id, b"ignored") == bool(spans.decide(trace_id, "")[0])


def test_log_records_without_a_trace_id_are_decided_alike_by_agents_with_the_same_seed() -> None:
    records = [f"record-{i}".encode() for i in range(400)]

    def decisions(seed: int) -> list[bool]:
        logs = sampling.LogSampler(spec.Sampling(ratio=0.5, signals=["logs"], hashSeed=seed))
        return [logs.keeps(b"", record) for record in records]

    assert decisions(42) == decisions(42)
    assert decisions(42) != decisions(43)
    assert 150 < sum(decisions(42)) < 250
