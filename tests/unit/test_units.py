"""Sizes and durations as users write them, and back: what the CRD defaults and docs show parses to the
same value the code uses."""

from __future__ import annotations

import re

import hypothesis
import pytest
from hypothesis import strategies as st
from otlp_agent.api import units

KiB = 1024
MiB = 1024 * KiB


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("16Mi", 16 * MiB),
        ("512Ki", 512 * KiB),
        ("2Gi", 2 * 1024 * MiB),
        ("1Ti", 1024**4),
        ("1Pi", 1024**5),
        ("1Ei", 1024**6),
        ("4M", 4_000_000),
        ("3k", 3000),
        ("1G", 1_000_000_000),
        ("2T", 2 * 10**12),
        ("1E", 10**18),
        ("1000", 1000),
        ("1.5Gi", 3 * 512 * MiB),
        ("1.5k", 1500),
        ("0.5Mi", 512 * KiB),
        (".5Ki", 512),
        ("2.", 2),
        ("+8Ki", 8 * KiB),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2.5e6", 2_500_000),
        ("1e+2", 100),
        ("5e-1", 1),  # half a byte rounds up, as Kubernetes rounds memory quantities
        ("1500m", 2),
        ("1m", 1),
        ("1000000u", 1),
        ("1000000000n", 1),
        ("0", 0),
    ],
)
def test_kubernetes_quantities_parse_to_whole_bytes(written: str, expected: int) -> None:
    assert units.parse_bytes(written) == expected


@pytest.mark.parametrize(
    "written", ["16mi", "16MB", "1.5.5Gi", "", "Mi", "16 Xi", " 16Mi", "1e", "0x10", "1Ki5"]
)
def test_byte_sizes_that_are_not_quantities_are_refused_with_examples(written: str) -> None:
    with pytest.raises(
        ValueError, match=r"is not a byte size: use an integer or a quantity like 16Mi, 1.5Gi"
    ):
        units.parse_bytes(written)


@pytest.mark.parametrize("written", ["-1", "-1.5Gi"])
def test_negative_sizes_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match=r"is negative: a size cannot be"):
        units.parse_bytes(written)


def test_absurd_exponents_are_refused_before_computing_them() -> None:
    with pytest.raises(ValueError, match=r"out of range"):
        units.parse_bytes("1e999999999")


def test_non_strings_pass_through_to_the_model_for_type_checks() -> None:
    assert units.parse_bytes(16 * MiB) == 16 * MiB
    assert units.parse_duration(2.5) == 2.5
    assert units.parse_bytes(None) is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (16 * MiB, "16Mi"),
        (KiB, "1Ki"),
        (1536, 1536),
        (3 * 1024 * MiB, "3Gi"),
        (1024**4, "1Ti"),
        (1024**5, "1Pi"),
        (0, 0),
        (7, 7),
    ],
)
def test_byte_sizes_format_as_the_shortest_exact_binary_quantity(value: int, shown: str | int) -> None:
    assert units.format_bytes(value) == shown


@hypothesis.settings(derandomize=True, max_examples=200)
@hypothesis.given(st.integers(min_value=0, max_value=2**62))
def test_formatted_byte_sizes_parse_back_to_the_same_value(value: int) -> None:
    assert units.parse_bytes(str(units.format_bytes(value))) == value


@hypothesis.settings(derandomize=True, max_examples=300)
@hypothesis.given(st.from_regex(units.QUANTITY_PATTERN, fullmatch=True))
def test_every_string_the_crd_pattern_admits_parses(written: str) -> None:
    hypothesis.assume(not _huge_exponent(written))
    assert isinstance(units.parse_bytes(written), int)


def _huge_exponent(written: str) -> bool:
    exponent = re.search(r"[eE]([+-]?[0-9]+)$", written)
    return exponent is not None and abs(int(exponent.group(1))) > 30


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("200ms", 0.2),
        ("5s", 5.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("0.5s", 0.5),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("0ms", 0.0),
        ("0", 0.0),
        ("+2s", 2.0),
        ("1h2m3.5s", 3723.5),
        ("1m30s", 90.0),
        ("300ms", 0.3),
        ("1us", 0.000001),
        ("1µs", 0.000001),
        ("1μs", 0.000001),
        ("1500ns", 0.0000015),
        ("2h45m", 9900.0),
        ("1s500ms", 1.5),
    ],
)
def test_go_durations_parse_to_seconds(written: str, seconds: float) -> None:
    assert units.parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize("written", ["5", "5sec", ".s", "1d", "ms", "", "5 s", " 5s", "1.5.5s", "s5", "1hm"])
def test_durations_that_are_not_go_durations_are_refused_with_examples(written: str) -> None:
    with pytest.raises(
        ValueError, match=r"is not a duration: use numbers with units .* like 300ms, 5s, 1m30s"
    ):
        units.parse_duration(written)


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"is negative: a duration cannot be"):
        units.parse_duration("-1s")


def test_bare_numbers_are_refused_as_durations_without_a_unit() -> None:
    with pytest.raises(ValueError, match=r"has no unit"):
        units.parse_duration(5)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0s"),
        (0.2, "200ms"),
        (5.0, "5s"),
        (60.0, "1m"),
        (90.0, "1m30s"),
        (3600.0, "1h"),
        (5400.0, "1h30m"),
        (3630.0, "1h30s"),
        (1.5, "1.5s"),
        (0.0015, "1.5ms"),
        (0.000001, "1µs"),
        (0.000000001, "1ns"),
        (86400.0, "24h"),
    ],
)
def test_durations_format_in_go_syntax(seconds: float, shown: str) -> None:
    assert units.format_duration(seconds) == shown


@hypothesis.settings(derandomize=True, max_examples=200)
@hypothesis.given(st.integers(min_value=0, max_value=10**15))
def test_formatted_durations_parse_back_to_the_same_nanosecond(nanos: int) -> None:
    assert round(units.parse_duration(units.format_duration(nanos / 10**9)) * 10**9) == nanos


@hypothesis.settings(derandomize=True, max_examples=300)
@hypothesis.given(st.from_regex(units.DURATION_PATTERN, fullmatch=True))
def test_every_string_the_crd_duration_pattern_admits_parses(written: str) -> None:
    assert units.parse_duration(written) >= 0
