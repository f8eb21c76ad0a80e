"""Counts the requests inside `Intake.consume` (every receiver's way into the pipeline), so a test can wait
until a server has really ended a request's handler (cancelled when its client left) instead of hoping it
had by the time the client saw its own error: the two happen on different sides of a socket."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.pipeline import intake


class ConsumeCalls:
    """`in_progress`: handlers inside `Intake.consume` now (the agent's own code, only counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.in_progress = 0
        consume = intake.Intake.consume

        async def counted(pipeline: intake.Intake, *args: Any, **kwargs: Any) -> intake.Accepted:
            self.in_progress += 1
            try:
                return await consume(pipeline, *args, **kwargs)
            finally:
                self.in_progress -= 1

        monkeypatch.setattr(intake.Intake, "consume", counted)
