"""Retry waits: exponential growth, a cap, bounded jitter, and a server's hint respected."""

from __future__ import annotations

import random

import pytest
from otlp_agent.api import spec
from otlp_agent.exporter.sender import backoff


def retry(**fields: object) -> spec.Retry:
    return spec.Retry.model_validate(fields)


def test_without_jitter_waits_grow_by_the_multiplier_then_stop_at_the_cap() -> None:
    b = backoff.Backoff(retry(initialInterval="1s", maxInterval="10s", multiplier=2, jitter=0))
    assert [b.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_the_default_policy_starts_at_five_seconds_and_caps_at_thirty() -> None:
    b = backoff.Backoff(retry(jitter=0))
    assert [b.delay(n) for n in (1, 2, 3)] == pytest.approx([5.0, 7.5, 11.25])
    assert b.delay(50) == 30.0


def test_jittered_waits_stay_within_plus_or_minus_jitter_of_the_base() -> None:
    settings = retry(initialInterval="1s", maxInterval="20s", multiplier=1.5, jitter=0.5)
    b = backoff.Backoff(settings, random.Random(7))
    for attempt in range(1, 15):
        base = min(20.0, 1.5 ** (attempt - 1))
        samples = [b.delay(attempt) for _ in range(200)]
        assert all(base * 0.5 <= s <= base * 1.5 for s in samples), attempt
        assert max(samples) - min(samples) > base * 0.5, "jitter should spread the waits"


def test_jitter_is_reproducible_with_a_seeded_random_source() -> None:
    settings = retry(jitter=0.3)
    first = [backoff.Backoff(settings, random.Random(42)).delay(n) for n in range(1, 6)]
    second = [backoff.Backoff(settings, random.Random(42)).delay(n) for n in range(1, 6)]
    assert first == second


def test_jittered_waits_average_out_to_the_base() -> None:
    b = backoff.Backoff(retry(initialInterval="2s", jitter=0.5), random.Random(1))
    samples = [b.delay(1) for _ in range(2000)]
    assert sum(samples) / len(samples) == pytest.approx(2.0, rel=0.05)


def test_a_server_hint_longer_than_the_backoff_is_waited_in_full() -> None:
    b = backoff.Backoff(retry(initialInterval="1s", jitter=0.5), random.Random(3))
    assert b.delay(1, server_hint=45.0) == 45.0


def test_a_server_hint_shorter_than_the_backoff_does_not_shorten_it() -> None:
    b = backoff.Backoff(retry(initialInterval="4s", jitter=0))
    assert b.delay(1, server_hint=0.5) == 4.0
    assert b.delay(1, server_hint=None) == 4.0
