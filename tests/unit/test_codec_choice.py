"""compression auto: the documented objective (fewest bytes within the CPU budget, the cheaper of equals),
no flapping on noise, periodic re-measurement, and what happens when a backend refuses a codec."""

from __future__ import annotations

import random

import pytest
from otlp_agent.api import spec
from otlp_agent.exporter.transport import codec_choice
from otlp_agent.exporter.transport.codec_choice import Codec, Figures, Sample

from tests.support.fake_clock import FakeClock

ZSTD, GZIP, NONE, ZSTD3 = Codec("zstd"), Codec("gzip"), Codec("none"), Codec("zstd", 3)
MS = 0.001


def figures(**by_label: tuple[float, float]) -> dict[Codec, Figures]:
    """label=(ratio, ms per MiB)"""
    return {
        Codec.parse(label.replace("_", ":")): Figures(r, cpu * MS) for label, (r, cpu) in by_label.items()
    }


def test_the_fewest_bytes_within_the_budget_win() -> None:
    measured = figures(zstd=(9.5, 1.1), gzip=(8.0, 0.8), zstd_3=(10.0, 4.0), none=(1.0, 0.0))
    assert codec_choice.choose(measured, 5 * MS, None) == ZSTD3
    assert codec_choice.choose(measured, 2 * MS, None) == ZSTD  # zstd:3 is over budget
    assert codec_choice.choose(measured, 1 * MS, None) == GZIP
    assert codec_choice.choose(measured, 0.0, None) == NONE


def test_codecs_within_two_percent_of_the_fewest_bytes_count_as_equal_and_the_cheaper_wins() -> None:
    incompressible = figures(zstd=(1.01, 0.9), gzip=(1.005, 0.7), none=(1.0, 0.0))
    assert codec_choice.choose(incompressible, 5 * MS, None) == NONE
    close = figures(zstd=(9.5, 1.1), gzip=(9.4, 0.8))
    assert codec_choice.choose(close, 5 * MS, None) == GZIP


def test_when_nothing_fits_the_budget_the_cheapest_wins() -> None:
    assert codec_choice.choose(figures(zstd=(9.5, 3.0), gzip=(8.0, 2.0)), 1 * MS, None) == GZIP


def test_the_codec_in_use_is_kept_while_noise_alone_separates_it_from_the_best() -> None:
    measured = figures(zstd=(9.5, 1.1), gzip=(9.4, 1.0))
    assert codec_choice.choose(measured, 5 * MS, ZSTD) == ZSTD  # 10% more CPU, ~1% fewer bytes: stays
    assert codec_choice.choose(figures(zstd=(9.5, 2.0), gzip=(9.4, 1.0)), 5 * MS, ZSTD) == GZIP
    near_budget = figures(zstd=(9.5, 5.2), gzip=(8.0, 1.0))
    assert codec_choice.choose(near_budget, 5 * MS, ZSTD) == ZSTD  # within 10% over the budget: stays
    assert codec_choice.choose(near_budget, 5 * MS, None) == GZIP


def chooser(
    clock: FakeClock, protocol: spec.Protocol = spec.Protocol.http_protobuf, **settings: object
) -> codec_choice.Chooser:
    return codec_choice.Chooser(spec.CompressionAuto.model_validate(settings), protocol, clock=clock)


def sample(codec: Codec, ratio: float, ms_per_mib: float, raw: int = 1 << 20) -> Sample:
    return Sample(codec, raw, int(raw / ratio), ms_per_mib * MS * raw / (1 << 20))


def test_every_candidate_is_measured_on_the_first_batch_then_every_evaluate_every() -> None:
    clock = FakeClock()
    choice = chooser(clock, evaluateEvery="60s")
    assert choice.current == ZSTD  # before any measurement: the first candidate
    assert choice.to_measure(1 << 20) == [ZSTD, GZIP]  # none costs nothing to know
    assert choice.to_measure(1 << 20) == []
    clock.now = 59.9
    assert choice.to_measure(1 << 20) == []
    clock.now = 60.0
    assert choice.to_measure(1 << 20) == [ZSTD, GZIP]


def test_tiny_batches_are_sent_but_not_measured() -> None:
    choice = chooser(FakeClock())
    assert choice.to_measure(100) == []
    assert choice.to_measure(64 * 1024) == [ZSTD, GZIP]


def test_measurements_are_smoothed_and_drive_the_choice() -> None:
    choice = chooser(FakeClock(), cpuBudget="1ms")
    choice.record([sample(ZSTD, 9.0, 1.2), sample(GZIP, 8.0, 0.8)])
    assert choice.current == GZIP  # zstd costs more than the budget
    choice.record([sample(ZSTD, 9.0, 0.6), sample(GZIP, 8.0, 0.8)])
    assert choice.figures[ZSTD].cpu_per_mib == pytest.approx(0.9 * MS)  # half the old, half the new
    assert choice.current == ZSTD


def test_a_refused_codec_is_dropped_and_the_next_best_takes_over() -> None:
    choice = chooser(FakeClock())
    choice.record([sample(ZSTD, 9.0, 1.0), sample(GZIP, 8.0, 0.8)])
    assert choice.current == ZSTD
    assert choice.refuse(ZSTD)
    assert choice.current == GZIP and ZSTD not in choice.figures
    assert choice.to_measure(1 << 20) == [GZIP]
    choice.record([sample(ZSTD, 20.0, 0.1), sample(GZIP, 8.0, 0.8)])  # a late sample of a refused codec
    assert choice.current == GZIP
    assert choice.refuse(GZIP)
    assert choice.current == NONE
    assert not choice.refuse(NONE)  # plain bytes cannot be refused for their encoding


def test_when_every_candidate_is_refused_plain_bytes_are_sent() -> None:
    choice = chooser(FakeClock(), candidates=["zstd"])
    assert choice.refuse(ZSTD)
    assert choice.current == NONE


def test_grpc_exporters_choose_between_gzip_and_none_and_measure_grpcs_own_zlib() -> None:
    choice = chooser(FakeClock(), spec.Protocol.grpc)
    assert choice.candidates == [GZIP, NONE]
    assert choice.compress is codec_choice.grpc_compress
    data = random.Random(1).randbytes(4096) * 16
    import zlib

    assert zlib.decompress(codec_choice.grpc_compress(data, GZIP), zlib.MAX_WBITS | 16) == data


def test_measuring_times_each_codec_on_the_same_sample() -> None:
    data = b"attribute=value;" * 20000
    samples = codec_choice.measure(data, [ZSTD, GZIP, Codec("gzip", 3)], codec_choice.http_compress)
    assert [s.codec for s in samples] == [ZSTD, GZIP, Codec("gzip", 3)]
    assert all(s.raw == len(data) and 0 < s.wire < len(data) / 20 and s.cpu >= 0 for s in samples)
