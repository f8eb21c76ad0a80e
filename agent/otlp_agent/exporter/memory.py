"""The memory limiter: counts the bytes the agent holds, in `Lease`s, and tells receivers when to refuse.

Two kinds of bytes are counted, in one budget (`limit`):
- data held (`held`): a batch's bytes from the moment an exporter lane accepts them until the batch's
  outcome is final (exported, refused, dropped, shut down) or it is on disk. Each batch owns one `Lease`,
  acquired once and released once, whatever path it takes. Fan-out is counted once per exporter, which
  errs on the safe side.
- bytes being received (`receiving`): a request's worst-case cost while it is read, decompressed and
  validated, reserved *before* that work (`reserve`) and settled to the real size after. Receivers give
  the reservation back just before they hand the request to the pipeline, where the lanes lease it again.
  A request the pipeline still works on (routes, enrichment, processors) is counted here meanwhile
  (`in_progress`).

Above `limit - spikeLimit` of data held, new requests are refused with a retryable status so clients back
off instead of the pod being OOM-killed. Below it, a reservation waits until `held + receiving` leaves
room for it (for at most the timeout it is given), so bursts of requests queue instead of being refused;
a reservation larger than `limit` can never be served and is refused for good by the caller. A sixteenth of
the limit (`small_room`) is kept free of large reservations (over `small_size`, a 64th): small requests
pass while a flood of large ones waits. A reload
hands the same limiter to the new pipeline, so the old pipeline's bytes still count while it drains.
"""

from __future__ import annotations

import asyncio
import collections


class Lease:
    """Bytes counted against a limiter until `release` (idempotent: the second call does nothing)."""

    __slots__ = ("_limiter", "_receiving", "size")

    def __init__(self, limiter: MemoryLimiter | None, size: int, receiving: bool = False) -> None:
        self._limiter = limiter
        self._receiving = receiving
        self.size = size

    @property
    def released(self) -> bool:
        return self._limiter is None

    def grow(self, size: int) -> None:
        """Count `size` more bytes now (a batch taking in another request)."""
        if self._limiter is None:
            raise RuntimeError("a released lease cannot grow")
        self.size += size
        self._limiter._add(size, self._receiving)

    def settle(self, size: int) -> None:
        """Count `size` bytes instead of the estimate (only ever lower: estimates are worst cases)."""
        if self._limiter is not None and size < self.size:
            self._limiter._add(size - self.size, self._receiving)
            self.size = size

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._add(-self.size, self._receiving)


def no_lease() -> Lease:
    """A lease that holds nothing (a batch rebuilt only to be counted, e.g. a row evicted from disk)."""
    return Lease(None, 0)


class Busy(Exception):
    """A reservation could not be made: the agent holds too much data now (retry later)."""


class MemoryLimiter:
    """Byte accounting with a soft (refuse) and hard (never exceed) limit."""

    def __init__(self, limit: int, spike_limit: int) -> None:
        self.held = 0
        self.receiving = 0
        # Waiting reservations, small ones (at most `small_size`) apart so they can pass large ones.
        self._small: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._large: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self.configure(limit, spike_limit)

    def configure(self, limit: int, spike_limit: int) -> None:
        """Set the limits (again, after a config reload: the bytes held stay counted)."""
        self.limit = limit
        self.soft_limit = limit - spike_limit
        # Kept free of large reservations (when they can still fit without it), so a flood of large
        # requests waiting for memory never stalls the small requests of well-behaved clients.
        self.small_room = limit // 16
        # What counts as small: a 64th of the limit (4 MiB at the default 256Mi). It must be below the
        # largest reservations, or nothing is large: the default maxBodySize and maxMessageSize are a
        # sixteenth, and were "small" when the room was also the threshold, so sixteen slow 16 MiB bodies
        # took the whole limit. At a quarter of the room, the room holds four of the largest small requests
        # at once (and over a hundred of 100 KiB, a typical SDK batch), and a gRPC maxMessageSize of 4Mi —
        # what docs/agent.md suggests for sidecars; every call reserves it — counts as small.
        self.small_size = limit // 64
        self._wake()

    @property
    def total(self) -> int:
        return self.held + self.receiving

    def over_soft_limit(self) -> bool:
        return self.held >= self.soft_limit

    def would_admit(self, size: int) -> bool:
        """Whether a new request of `size` bytes (times its fan-out) may be accepted now."""
        return self.held < self.soft_limit and self.total + size <= self.limit

    def lease(self, size: int = 0) -> Lease:
        """Count `size` bytes of data held now (admission was decided before: see `would_admit`)."""
        self.held += size
        return Lease(self, size)

    def in_progress(self, size: int) -> Lease:
        """Count `size` bytes of an admitted request still being worked on before the lanes take it
        (enrichment, processors, routing), with the requests being received, at once: its reservation
        was given back a moment ago, when its receiver handed it over."""
        self._add(size, True)
        return Lease(self, size, receiving=True)

    async def reserve(self, size: int, timeout: float) -> Lease:
        """Reserve `size` bytes for a request about to be received; waits for room up to `timeout`.

        Raises Busy when over the soft limit, when the data held alone leaves no room, or when no room was
        made in time (requests being received hold it). The caller refuses sizes
        above `limit` itself (they would wait forever)."""
        lease = self.try_reserve(size)
        if lease is not None:
            return lease
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        entry = (size, granted)
        self._queue_for(size).append(entry)
        # A timer rather than asyncio.wait_for: this path is taken by every call of a burst, so it is kept
        # to one future and one timer handle.
        timer = loop.call_later(timeout, _expire, granted)
        try:
            await granted
        except BaseException:  # timed out, or the client went away while waiting
            self._withdraw(entry)
            if granted.done() and not granted.cancelled() and isinstance(granted.exception(), Busy):
                raise Busy(
                    f"no room for {size} bytes within {timeout:g}s ({self.total} bytes in use)"
                ) from None
            raise
        finally:
            timer.cancel()
        return Lease(self, size, receiving=True)

    def try_reserve(self, size: int) -> Lease | None:
        """`reserve` without waiting: the lease when there is room now, None when `reserve` would wait; raises
        Busy when it would refuse at once."""
        if self.over_soft_limit() or self.held + size > self.limit:
            # Only exports can make room here, which may take long: the client is better off retrying.
            raise Busy(f"memory limit reached ({self.held} bytes held)")
        if not self._fits(size):
            return None
        self.receiving += size
        return Lease(self, size, receiving=True)

    def _fits(self, size: int) -> bool:
        room = self.limit - self.total
        if size > self.small_size and size + self.small_room <= self.limit:
            room -= self.small_room
        return size <= room

    def _withdraw(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        size, granted = entry
        if granted.done() and not granted.cancelled() and granted.exception() is None:
            self.receiving -= size  # granted just as the wait ended: give it back
        else:
            granted.cancel()
            for waiters in (self._small, self._large):  # the class may have changed with a reload
                if entry in waiters:
                    waiters.remove(entry)
        self._wake()  # a large waiter at the head may have been holding smaller ones back

    def _add(self, size: int, receiving: bool) -> None:
        if receiving:
            self.receiving += size
        else:
            self.held += size
        if size < 0:
            self._wake()

    def _queue_for(self, size: int) -> collections.deque[tuple[int, asyncio.Future[None]]]:
        return self._small if size <= self.small_size else self._large

    def _wake(self) -> None:
        """Grant waiting reservations that fit now, oldest first in each queue: small ones may pass large
        ones that do not fit yet (a flood of large requests must not stall small ones); a large one waits
        at most its timeout, then is refused as retryable. Stops at the first that does not fit, so a
        release costs O(granted), not O(waiting)."""
        for waiters in (self._small, self._large):
            while waiters:
                size, granted = waiters[0]
                if granted.done():  # expired or cancelled
                    waiters.popleft()
                    continue
                if not self._fits(size):
                    break
                waiters.popleft()
                self.receiving += size
                granted.set_result(None)


def _expire(granted: asyncio.Future[None]) -> None:
    if not granted.done():
        granted.set_exception(Busy("timed out"))
