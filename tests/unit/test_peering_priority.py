"""The default peering priority: the oldest replica leads, and replicas started together never tie (kopf
pauses every replica while two share the highest priority, so a tie would stop all reconciling)."""

from __future__ import annotations

import time

import pytest
from otlp_operator.edge import settings

INT64_MIN = -(2**63)


def test_replicas_started_in_the_same_millisecond_get_different_priorities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Their random digits differ but for a one-in-a-million draw, and so do their priorities."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_796_285_859_177_000_000)
    draws = iter([123_456, 654_321])
    monkeypatch.setattr(settings.secrets, "randbelow", lambda bound: next(draws) % bound)
    assert settings.default_priority() != settings.default_priority()
    assert settings.TIEBREAK >= 1_000_000


def test_an_older_replica_always_outranks_a_newer_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for draw in (0, settings.TIEBREAK - 1):
        monkeypatch.setattr(settings.secrets, "randbelow", lambda _, draw=draw: draw)
        monkeypatch.setattr(time, "time_ns", lambda: 1_796_285_859_177_000_000)
        older = settings.default_priority()
        monkeypatch.setattr(settings.secrets, "randbelow", lambda _, draw=draw: settings.TIEBREAK - 1 - draw)
        monkeypatch.setattr(time, "time_ns", lambda: 1_796_285_859_178_000_000)  # one millisecond later
        assert older > settings.default_priority()


def test_priorities_fit_the_peering_objects_int64() -> None:
    assert INT64_MIN < settings.default_priority() < 0
