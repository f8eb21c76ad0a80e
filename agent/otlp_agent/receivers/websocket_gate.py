"""Reading a WebSocket connection within memory reservations: the bytes of a message are counted before
they are read, as the HTTP receiver counts a body before reading it.

aiohttp reads a whole message into memory before anyone can look at it. The `Gate` sits between the
connection's transport and aiohttp's protocol and walks the frame headers (RFC 6455 section 5.2) of what
arrives: before the payload of a message is let through, a reservation for it is made — its length when
it is one frame, the largest message allowed when it comes in fragments (then settled to its real size
when it is read). When there is room now the bytes go straight on. When there is not, the gate stops
reading the socket (TCP pushes back on the client), keeps the one chunk it already has, and waits for room
(`Admission.reserve`: up to 5 s); no further message is read meanwhile. A message whose reservation is
refused (over the memory limit) is read and dropped as it arrives, never held: only its first bytes (the
`<signal> <id>` line) are kept, and the connection answers it by id with the refusal. Until that answer is
written, the gate reads nothing more, so a client that does not read its answers cannot make them pile up.

Each data message has a read deadline, the HTTP receiver's `readTimeout` (as for a request body): from the
moment the gate lets its first frame through (once its reservation is made) to its last fragment. Nothing
else bounds it — RFC 6455 lets control frames come between fragments, and aiohttp's own timers restart on
every ping and pong — so without it a client could start a message in fragments, then only ping, and hold
`maxBodySize` of the limiter for as long as it likes. Time during which aiohttp stopped reading the
connection (its queue full: the connection's `maxInFlight` requests are still being handled) is the
agent's, not the client's: the clock stands still meanwhile. Past the deadline the gate drops the message and
gives its reservation back at once, passes nothing more to aiohttp (it is mid-frame), and tells the
connection (`too_slow`), which closes it with 1008. The clock starts at the end of the chunk of bytes in
which the message started, so a message that arrives whole in one chunk (the common case) costs nothing,
and one timer per connection, re-armed lazily, serves all its messages.

Control frames (ping, pong, close) go through as they come. aiohttp's own flow control (it stops reading
while its queue holds messages nobody took) is left alone: the gate pauses and resumes the transport only
for its own waits, and never resumes one aiohttp paused. Everything after the upgrade passes the gate —
it is installed before the handshake answer is sent, and a client that sent frames before that answer (RFC
6455 section 4.1 forbids it) is refused — so the gate and aiohttp always agree where frames start.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Awaitable, Callable
from typing import Any

from otlp_agent.exporter import memory
from otlp_agent.otlp import errors

_CONTINUATION, _TEXT, _BINARY = 0x0, 0x1, 0x2
#: Bytes of a refused message kept for its answer: the header line ends within them.
PREFIX_BYTES = 128

Refused = Callable[[bytes, bool, errors.ReceiveError], None]
"""Told of a refused message, dropped unread: its first bytes (unmasked), whether it is text, and why."""


class _Mode(enum.Enum):
    forward = "forward"  # to aiohttp, within a reservation
    discard = "discard"  # read and dropped (refused, or the connection is closing)


class Gate(asyncio.Protocol):
    """Wraps `inner` (aiohttp's protocol) on `transport`; `install` puts it in place."""

    def __init__(
        self,
        transport: asyncio.Transport,
        inner: asyncio.Protocol,
        max_message: int,
        reserve_now: Callable[[int], memory.Lease | None],
        reserve: Callable[[int], Awaitable[memory.Lease]],
        refused: Refused,
        read_timeout: float,
        too_slow: Callable[[], None],
        lost: Callable[[], None],
    ) -> None:
        """`reserve_now` reserves without waiting (None: no room now), `reserve` waits for room; both raise
        errors.ReceiveError to refuse. `max_message`: aiohttp's limit (a larger message closes the
        connection there, before its payload is read). `read_timeout`: a message's read deadline;
        `too_slow` is called once when one passes it. `lost`: called when the connection is lost."""
        self._transport = transport
        self._inner = inner
        self._max_message = max_message
        self._reserve_now = reserve_now
        self._reserve = reserve
        self._refused = refused
        self._read_timeout = read_timeout
        self._too_slow = too_slow
        self._lost = lost
        self._loop = asyncio.get_running_loop()
        self.ready: collections.deque[memory.Lease] = collections.deque()  # messages read, in order
        self._header = bytearray()  # the frame header being read
        self._header_size = 2
        self._left: int | None = None  # payload bytes of the current frame still to come; None: in a header
        self._mode = _Mode.forward  # of the current frame's payload
        self._message: _Mode | None = None  # of the message in progress (fragments), None between messages
        self._lease: memory.Lease | None = None  # of the message being forwarded
        self._prefix = bytearray()  # first bytes of the message being discarded
        self._text = False
        self._why: errors.ReceiveError | None = None  # why it is discarded
        self._offset = 0  # payload bytes of the current frame seen (for unmasking the prefix)
        self._stash = b""  # bytes received while holding, not looked at yet
        self._waiting: asyncio.Task[None] | None = None  # a reservation being waited for
        self._answering = False  # a refusal is being written
        self._paused = False  # the gate paused the transport
        self._closing = False
        self._deadline: float | None = None  # when the message being read must have ended (loop time)
        self._stopped: float | None = None  # when aiohttp stopped reading during that message
        self._timer: asyncio.TimerHandle | None = None  # checks the deadline; at most one
        self._clock_due = False  # a message started in this chunk: its clock starts if it is not over
        self._failed = False  # a message was too slow: nothing more goes to aiohttp

    def install(self) -> None:
        self._transport.set_protocol(self)

    # -- what the connection tells the gate ---------------------------------------------------------------

    def take(self) -> memory.Lease:
        """The reservation of the next message aiohttp hands over (every data message has one)."""
        if self._stopped is not None and not _reading_paused(self._inner):  # taking it let aiohttp read on
            self._restart_clock()
        return self.ready.popleft() if self.ready else memory.no_lease()

    @property
    def busy(self) -> bool:
        """A message is being read, or was read and not taken yet."""
        return self._message is not None or self._waiting is not None or bool(self.ready)

    def answered(self) -> None:
        """The refusal of a dropped message is written: read on."""
        self._answering = False
        self._release()

    def closing(self) -> None:
        """From now on data messages are dropped unread and unanswered; control frames (the close
        handshake) still go through."""
        self._closing = True
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
            self._decided(_Mode.discard, None, None)
            self._start_payload()
        self._answering = False
        self._release()

    def close(self) -> None:
        """The connection is over: give back every reservation."""
        self.closing()
        for lease in (*self.ready, self._lease):
            if lease is not None:
                lease.release()
        self.ready.clear()
        self._lease = None
        self._deadline = self._stopped = None
        self._clock_due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        """Drop the connection at once (a client that does not even take the close frame)."""
        self._transport.abort()

    # -- asyncio.Protocol: everything but the data goes to aiohttp as it comes ------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)
        self._lost()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        if self._holding():
            self._stash += data
            self._pause()
            return
        self._walk(data)

    # -- walking the frames ---------------------------------------------------------------------------------

    def _holding(self) -> bool:
        return self._waiting is not None or self._answering

    def _walk(self, data: bytes) -> None:
        """Forward or drop `data` frame by frame; stop (and stash the rest) where a reservation must wait
        or a refusal is being answered."""
        view = memoryview(data)
        out: list[memoryview] = []
        position = 0
        while position < len(data):
            if self._left is None:
                position = self._read_header(view, position, out)
                if self._holding():  # a reservation waits: the rest waits too
                    self._stash = data[position:]
                    self._pause()
                    break
                continue
            taken = min(self._left, len(data) - position)
            piece = view[position : position + taken]
            if self._mode is _Mode.forward:
                out.append(piece)
            else:
                self._keep_prefix(piece)
            position += taken
            self._offset += taken
            self._left -= taken
            if self._left == 0:
                self._frame_done()
                if self._holding():
                    self._stash = data[position:]
                    self._pause()
                    break
        self._forward(data, out)
        self._arm()

    def _read_header(self, view: memoryview, position: int, out: list[memoryview]) -> int:
        needed = self._header_size - len(self._header)
        self._header += view[position : position + needed]
        position += min(needed, len(view) - position)
        if len(self._header) == 2:
            size = self._header[1] & 0x7F
            self._header_size = 2 + {126: 2, 127: 8}.get(size, 0) + (4 if self._header[1] & 0x80 else 0)
        if len(self._header) < self._header_size:
            return position
        decision = self._decide()
        if decision is not None:
            mode, lease, why = decision
            self._decided(mode, lease, why)
            if mode is _Mode.forward:
                out.append(memoryview(bytes(self._header)))
            self._start_payload()
        return position

    def _decide(self) -> tuple[_Mode, memory.Lease | None, errors.ReceiveError | None] | None:
        """What to do with the frame whose header was just read; None: wait for a reservation."""
        opcode, fin, length = self._header[0] & 0x0F, bool(self._header[0] & 0x80), self._length()
        if opcode == _CONTINUATION:
            # Outside a message aiohttp would buffer the payload before refusing it: dropped here instead.
            return (self._message or _Mode.discard), None, self._why
        if opcode not in (_TEXT, _BINARY):
            return _Mode.forward, None, None  # control frames (aiohttp checks them), or invalid opcodes
        self._text = opcode == _TEXT
        if self._closing:
            return _Mode.discard, None, None
        if length >= self._max_message:
            return _Mode.forward, None, None  # aiohttp closes the connection (1009) before the payload
        need = length if fin else self._max_message
        try:
            lease = self._reserve_now(need)
        except errors.ReceiveError as exc:
            return _Mode.discard, None, exc
        if lease is None:
            self._waiting = asyncio.get_running_loop().create_task(self._wait(need))
            return None
        return _Mode.forward, lease, None

    async def _wait(self, need: int) -> None:
        try:
            lease = await self._reserve(need)
        except errors.ReceiveError as exc:
            self._waiting = None
            self._decided(_Mode.discard, None, exc)
        else:
            self._waiting = None
            self._decided(_Mode.forward, lease, None)
            self._inner.data_received(bytes(self._header))
        self._start_payload()
        self._release()
        self._arm()

    def _decided(self, mode: _Mode, lease: memory.Lease | None, why: errors.ReceiveError | None) -> None:
        opcode = self._header[0] & 0x0F
        self._mode = mode
        if opcode in (_TEXT, _BINARY):  # a new message
            if self._lease is not None:  # the last one never ended (the client broke the protocol)
                self._lease.release()
            self._message, self._lease, self._why = mode, lease, why
            self._prefix.clear()
            self._clock_due = not self._closing

    def _start_payload(self) -> None:
        self._left = self._length()
        self._offset = 0
        if self._left == 0:
            self._frame_done()

    def _frame_done(self) -> None:
        opcode, fin = self._header[0] & 0x0F, bool(self._header[0] & 0x80)
        self._header.clear()
        self._header_size = 2
        self._left = None
        if not fin or opcode not in (_CONTINUATION, _TEXT, _BINARY) or self._message is None:
            return
        self._deadline = self._stopped = None
        self._clock_due = False
        if self._message is _Mode.forward and self._lease is not None:
            self.ready.append(self._lease)
        elif self._why is not None:  # refused (not dropped because the connection is closing)
            self._answering = True
            self._refused(bytes(self._prefix), self._text, self._why)
        self._message, self._lease, self._why = None, None, None

    def _length(self) -> int:
        size = self._header[1] & 0x7F
        if size < 126:
            return size
        return int.from_bytes(self._header[2 : 4 if size == 126 else 10], "big")

    def _keep_prefix(self, piece: memoryview) -> None:
        """Keep the first PREFIX_BYTES of a dropped message, unmasked."""
        room = PREFIX_BYTES - len(self._prefix)
        if room <= 0 or self._why is None:
            return
        kept = bytearray(piece[:room])
        if self._header[1] & 0x80:
            mask = self._header[self._header_size - 4 : self._header_size]
            for index in range(len(kept)):
                kept[index] ^= mask[(self._offset + index) % 4]
        self._prefix += kept

    def _forward(self, data: bytes, out: list[memoryview]) -> None:
        if len(out) == 1 and len(out[0]) == len(data):
            self._inner.data_received(data)  # the common case: the whole chunk, not copied
        elif out:
            self._inner.data_received(b"".join(out))

    # -- the read deadline -----------------------------------------------------------------------------------

    def _arm(self) -> None:
        """After a chunk: start the clock of a message begun in it and not over; stop it if aiohttp has just
        stopped reading (its queue is full)."""
        if self._clock_due:
            self._clock_due = False
            self._start_clock()
        if self._deadline is not None and self._stopped is None and _reading_paused(self._inner):
            self._stopped = self._loop.time()

    def _start_clock(self) -> None:
        self._deadline = self._loop.time() + self._read_timeout
        self._stopped = None
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()  # (set for an earlier message whose clock had stood still)
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_clock)

    def _restart_clock(self) -> None:
        """aiohttp reads again: the time it did not is added to the deadline."""
        assert self._deadline is not None and self._stopped is not None
        self._deadline += self._loop.time() - self._stopped
        self._stopped = None
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_clock)

    def _check_clock(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # that message ended; the next one set its own
        if self._stopped is not None:
            if _reading_paused(self._inner):
                self._timer = self._loop.call_later(self._read_timeout, self._check_clock)
                return
            self._restart_clock()  # (`take` normally notices first)
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._check_clock)
            return
        self._fail()

    def _fail(self) -> None:
        """The message being read is past its deadline: give its reservation back and read nothing more (the
        connection closes it; aiohttp is mid-frame, so nothing after this point could be passed on)."""
        self._deadline = self._stopped = None
        self._clock_due = False
        self._failed = True
        self._stash = b""
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        self._message, self._why = None, None
        self.closing()
        self._too_slow()

    # -- the transport --------------------------------------------------------------------------------------

    def _pause(self) -> None:
        # Every time, not once: aiohttp may have resumed reading meanwhile (its queue drained).
        self._paused = True
        self._transport.pause_reading()

    def _release(self) -> None:
        """Go on with what was stashed; read the socket again unless aiohttp itself stopped reading."""
        if self._holding():
            return
        stash, self._stash = self._stash, b""
        if stash:
            self._walk(stash)
            if self._holding():
                return
        if self._paused:
            self._paused = False
            if not _reading_paused(self._inner) and not self._transport.is_closing():
                self._transport.resume_reading()


def _reading_paused(protocol: Any) -> bool:
    """Whether aiohttp paused reading itself (its queue is full, or a buffer it cannot drain yet): then it
    resumes reading when it is ready."""
    return bool(getattr(protocol, "_reading_paused", False) or getattr(protocol, "_buffer_paused", False))
