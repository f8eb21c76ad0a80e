"""Counts the calls of one of the agent's async methods that are in progress, so a test can wait until a
server has really ended a request's handler (cancelled when its client left) instead of hoping it had by
the time the client saw its own error: the two happen on different sides of a socket.

`CallsInProgress(monkeypatch, Intake, "consume")`: `.count` is the number of calls inside
`Intake.consume` now (every receiver's way into the pipeline); the method itself runs unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest


class CallsInProgress:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.count = 0
        method: Callable[..., Coroutine[Any, Any, Any]] = getattr(owner, name)

        @functools.wraps(method)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            try:
                return await method(*args, **kwargs)
            finally:
                self.count -= 1

        monkeypatch.setattr(owner, name, counted)
