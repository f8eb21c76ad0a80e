"""Sizes and durations as users write them, and back: what the CRD defaults and docs show parses to the
same value the code uses."""

from __future__ import annotations

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
        ("4M", 4_000_000),
        ("3k", 3000),
        ("1G", 1_000_000_000),
        ("1000", 1000),
        (" 16Mi ", 16 * MiB),
    ],
)
def test_byte_quantities_parse_to_bytes(written: str, expected: int) -> None:
    assert units.parse_bytes(written) == expected


@pytest.mark.parametrize("written", ["16mi", "16MB", "1.5Gi", "-1", "", "Mi", "16 Xi"])
def test_byte_sizes_that_are_not_quantities_are_refused_with_an_example(written: str) -> None:
    with pytest.raises(ValueError, match=r"is not a byte size: use an integer or a quantity like 16Mi"):
        units.parse_bytes(written)


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
        (0, 0),
        (7, 7),
    ],
)
def test_byte_sizes_format_as_the_shortest_exact_binary_quantity(value: int, shown: str | int) -> None:
    assert units.format_bytes(value) == shown


@hypothesis.settings(derandomize=True, max_examples=200)
@hypothesis.given(st.integers(min_value=0, max_value=2**50))
def test_formatted_byte_sizes_parse_back_to_the_same_value(value: int) -> None:
    assert units.parse_bytes(units.format_bytes(value)) == value


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("200ms", 0.2), ("5s", 5.0), ("1.5m", 90.0), ("1h", 3600.0), ("0.5s", 0.5), ("5 s", 5.0), ("0ms", 0.0)],
)
def test_durations_parse_to_seconds(written: str, seconds: float) -> None:
    assert units.parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize("written", ["5", "5sec", "-1s", ".5s", "1d", "ms", ""])
def test_durations_without_a_known_unit_are_refused_with_an_example(written: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use a number with a unit, like 200ms, 5s"):
        units.parse_duration(written)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.2, "200ms"),
        (5.0, "5s"),
        (60.0, "1m"),
        (90.0, "90s"),
        (3600.0, "1h"),
        (5400.0, "90m"),
        (1.5, "1500ms"),
    ],
)
def test_durations_format_in_the_largest_exact_unit(seconds: float, shown: str) -> None:
    assert units.format_duration(seconds) == shown


@hypothesis.settings(derandomize=True, max_examples=200)
@hypothesis.given(st.integers(min_value=0, max_value=10**9))
def test_formatted_durations_parse_back_to_the_same_millisecond(millis: int) -> None:
    assert round(units.parse_duration(units.format_duration(millis / 1000)) * 1000) == millis
