"""Exponential backoff with jitter (pure: the random source and clock are the caller's)."""

from __future__ import annotations

import random

from otlp_agent.api import spec


class Backoff:
    """Waits for successive retries: initial × multiplier^n, capped at max, randomized by ±jitter."""

    def __init__(self, settings: spec.Retry, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()

    def delay(self, attempt: int, server_hint: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based); a server's hint is a lower bound."""
        s = self.settings
        base = min(s.max_interval, s.initial_interval * s.multiplier ** (attempt - 1))
        jittered = base * (1 + s.jitter * (2 * self._rng.random() - 1))
        return max(jittered, server_hint or 0.0)
