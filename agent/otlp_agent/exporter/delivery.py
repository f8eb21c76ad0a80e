"""Delivery modes: when a client's request is answered, and what it hears if its data did not make it.

- fast: once the data is in a batcher (the default; nothing here is used).
- durable: once the batch holding the data is committed to the exporter's persistent queue.
- endToEnd: once the backend accepted that batch (with a memory or a persistent queue).

A batch carries one future (`Batch.done`) shared by every waiting request in it; the exporter runtime
settles it with `settle`. A request awaits all of its batches' futures with `wait_all`, which never cancels
a shared future when one client goes away. If the data did not make it, the client gets a retryable
refusal (it keeps the data and sends it again) — or, when the backend refused the batch for good, a
non-retryable error carrying the backend's message.
"""

from __future__ import annotations

import asyncio

import grpc

from otlp_agent.otlp import errors

#: What a client whose batch was not delivered is told to wait before sending again, in seconds.
RETRY_AFTER = 1.0


def not_delivered(message: str) -> errors.ReceiveError:
    """The batch holding the data was dropped or never exported: the client should send it again."""
    return errors.refused(message, RETRY_AFTER, "not_delivered")


def rejected_downstream(message: str) -> errors.ReceiveError:
    """The backend refused the batch holding the data for good (retrying would be refused again)."""
    return errors.ReceiveError(message, 400, grpc.StatusCode.INVALID_ARGUMENT, "rejected_downstream")


def settle(future: asyncio.Future[None] | None, error: errors.ReceiveError | None = None) -> None:
    """Answer every request waiting on a batch (idempotent; a future nobody made is ignored)."""
    if future is None or future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.add_done_callback(_mark_retrieved)


def _mark_retrieved(future: asyncio.Future[None]) -> None:
    future.exception()  # its clients may have gone; that is no reason for "exception never retrieved"


async def wait_all(futures: list[asyncio.Future[None]]) -> None:
    """Return when every future succeeded; raise the first failure's ReceiveError."""
    if not futures:
        return
    await asyncio.wait(futures)  # unlike gather, a cancelled waiter leaves the shared futures alone
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
