"""Waits on clients (a gRPC call's message, an HTTP body) are bounded by readTimeout through
`admission.ReadDeadlines`: refused as too slow once the timeout has passed (never before, at most one tick
after), untouched when the read completes in time, and cancelled as usual when the client goes away.
Virtual time (looptime): the loop's clock jumps to the next timer, so timeouts are checked exactly."""

from __future__ import annotations

import asyncio

import pytest
from otlp_agent.otlp import errors
from otlp_agent.receivers import admission

pytestmark = pytest.mark.looptime


async def test_a_read_that_never_completes_is_refused_once_the_timeout_has_passed() -> None:
    deadlines = admission.ReadDeadlines()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(errors.ReceiveError) as refused:
        await deadlines.within(asyncio.Event().wait(), 3.0, "request message")
    waited = loop.time() - started
    assert refused.value.reason == "timeout"
    assert "request message not received within 3s" in refused.value.message
    assert 3.0 <= waited <= 3.0 + admission.ReadDeadlines.TICK


async def test_reads_in_time_are_answered_and_only_the_late_ones_refused() -> None:
    deadlines = admission.ReadDeadlines()

    async def read(after: float) -> str:
        await asyncio.sleep(after)
        return f"read after {after:g}s"

    outcomes = await asyncio.gather(
        deadlines.within(read(1.0), 2.0, "body"),
        deadlines.within(read(5.0), 2.0, "body"),
        deadlines.within(read(1.9), 2.0, "body"),
        return_exceptions=True,
    )
    assert outcomes[0] == "read after 1s" and outcomes[2] == "read after 1.9s"
    assert isinstance(outcomes[1], errors.ReceiveError) and outcomes[1].reason == "timeout"
    # Nothing left registered: the next wait starts the timer again and is refused on time too.
    with pytest.raises(errors.ReceiveError):
        await deadlines.within(asyncio.Event().wait(), 1.0, "body")


async def test_a_client_going_away_cancels_the_read_as_usual() -> None:
    deadlines = admission.ReadDeadlines()
    task = asyncio.ensure_future(deadlines.within(asyncio.Event().wait(), 30.0, "body"))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
