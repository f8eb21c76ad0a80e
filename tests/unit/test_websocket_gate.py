"""The WebSocket gate walks frame headers byte for byte as they arrive: however TCP cuts the stream, aiohttp
gets exactly the bytes the client sent, each message's payload reserved before it is let through; a message
that must wait stops the reading, one refused is dropped with only its header line kept for the answer."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from otlp_agent.exporter import memory
from otlp_agent.otlp import errors
from otlp_agent.receivers import websocket_gate

from tests.support.waiting import eventually

MAX_MESSAGE = 1 << 20


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    key = os.urandom(4) if mask else b""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 65536:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([127]) + size.to_bytes(8, "big")
    if mask:
        length = bytes([length[0] | 0x80]) + length[1:]
        payload = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode]) + length + key + payload


class Transport:
    def __init__(self) -> None:
        self.reading = True
        self.protocol: asyncio.BaseProtocol | None = None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


class Inner(asyncio.Protocol):
    """What aiohttp's protocol would get."""

    def __init__(self) -> None:
        self.received = bytearray()
        self._reading_paused = False  # aiohttp's own flow control (its queue full)

    def data_received(self, data: bytes) -> None:
        self.received += data


class Harness:
    def __init__(self, limit: int = 64 << 20, read_timeout: float = 60.0) -> None:
        self.limiter = memory.MemoryLimiter(limit, 0)
        self.transport = Transport()
        self.inner = Inner()
        self.refusals: list[tuple[bytes, bool, errors.ReceiveError]] = []
        self.waited: list[int] = []
        self.grant = asyncio.Event()
        self.refuse_waits = False
        self.too_slow = 0
        self.gate = websocket_gate.Gate(
            self.transport,  # type: ignore[arg-type]
            self.inner,
            MAX_MESSAGE,
            self._reserve_now,
            self._reserve,
            lambda prefix, text, exc: self.refusals.append((prefix, text, exc)),
            read_timeout=read_timeout,
            too_slow=self._too_slow,
            lost=lambda: None,
        )

    def _too_slow(self) -> None:
        self.too_slow += 1

    def _reserve_now(self, size: int) -> memory.Lease | None:
        return None if self.refuse_waits or not self.grant.is_set() else self.limiter.lease(size)

    async def _reserve(self, size: int) -> memory.Lease:
        self.waited.append(size)
        await self.grant.wait()
        if self.refuse_waits:
            raise errors.refused("memory limit reached; retry later", 1.0, "memory_limit")
        return self.limiter.lease(size)


def stream() -> tuple[bytes, list[int]]:
    """Frames of every kind, and the reservation each data message needs."""
    frames = [
        frame(0x2, b"traces 1\n" + os.urandom(100)),
        frame(0x9, b"ping"),
        frame(0x1, b"logs 2\n" + b"{}" * 200),  # 126-form length
        frame(0x2, b"metrics 3\n" + os.urandom(70_000)),  # 127-form length
        frame(0x2, b"traces 4\n" + os.urandom(10), fin=False),
        frame(0xA, b"pong between fragments"),
        frame(0x0, os.urandom(300), fin=False),
        frame(0x0, b"", fin=True),
        frame(0x2, b""),  # an empty message
        frame(0x2, b"traces 5\n", mask=False),
        frame(0x8, b"\x03\xe8"),
    ]
    needs = [109, 7 + 400, 10 + 70_000, MAX_MESSAGE, 0, 9]
    return b"".join(frames), needs


@pytest.mark.parametrize("seed", range(20))
async def test_however_the_stream_is_cut_aiohttp_gets_exactly_its_bytes_each_message_reserved(
    seed: int,
) -> None:
    harness = Harness()
    harness.grant.set()
    data, needs = stream()
    chance = random.Random(seed)
    position = 0
    while position < len(data):
        step = 1 if seed == 0 else chance.randint(1, 4000)
        harness.gate.data_received(data[position : position + step])
        position += step
    assert bytes(harness.inner.received) == data
    assert [lease.size for lease in harness.gate.ready] == needs
    assert harness.limiter.held == sum(needs) and harness.transport.reading


async def test_a_message_that_must_wait_stops_the_reading_until_it_has_its_reservation() -> None:
    harness = Harness()
    first, second = frame(0x2, b"traces a\n" + b"x" * 500), frame(0x2, b"traces b\n" + b"y" * 50)
    harness.gate.data_received(first[:300])
    assert harness.inner.received == b"" and not harness.transport.reading
    harness.gate.data_received(first[300:] + second)  # arrived before the pause took effect: kept, not read
    await asyncio.sleep(0)
    assert harness.waited == [len(first) - 6 - 2] and harness.inner.received == b""
    harness.grant.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert bytes(harness.inner.received) == first + second and harness.transport.reading
    assert [lease.size for lease in harness.gate.ready] == [509, 59]


async def test_a_refused_message_is_dropped_keeping_its_header_line_and_reading_waits_for_its_answer() -> (
    None
):
    harness = Harness()
    harness.refuse_waits = True
    refused = frame(0x2, b"traces big-1\n" + os.urandom(5000))
    after = frame(0x2, b"traces 2\n" + b"z" * 10)
    harness.gate.data_received(refused + after)
    harness.grant.set()
    for _ in range(3):
        await asyncio.sleep(0)
    [(prefix, text, exc)] = harness.refusals
    assert prefix.startswith(b"traces big-1\n") and len(prefix) == websocket_gate.PREFIX_BYTES and not text
    assert exc.reason == "memory_limit"
    assert harness.inner.received == b"" and not harness.transport.reading  # until the refusal is written
    harness.refuse_waits = False
    harness.gate.answered()
    assert bytes(harness.inner.received) == after and harness.transport.reading
    assert harness.limiter.held == len(after) - 6


async def test_once_closing_data_messages_are_dropped_and_control_frames_still_pass() -> None:
    harness = Harness()
    harness.grant.set()
    close = frame(0x8, b"\x03\xe8")
    harness.gate.closing()
    harness.gate.data_received(frame(0x2, b"traces 1\n" + b"x" * 100) + close)
    assert bytes(harness.inner.received) == close and not harness.refusals
    assert harness.limiter.held == 0


async def test_a_message_not_complete_within_the_read_timeout_is_dropped_and_its_reservation_given_back() -> (
    None
):
    harness = Harness(read_timeout=0.2)
    harness.grant.set()
    on_time = frame(0x2, b"traces 1\n" + b"x" * 50)
    harness.gate.data_received(on_time + frame(0x2, b"traces 2\n", fin=False))  # then only pings
    assert harness.limiter.held == len(on_time) - 6 + MAX_MESSAGE
    for _ in range(3):
        harness.gate.data_received(frame(0x9, b"ping"))
        await asyncio.sleep(0.05)
    await eventually(lambda: harness.too_slow == 1, what="the late message to be given up")
    harness.gate.take().release()  # the message read in time is the connection's
    assert harness.limiter.held == 0
    passed = len(harness.inner.received)
    harness.gate.data_received(frame(0x0, b"the rest") + frame(0x8, b"\x03\xe8"))
    assert len(harness.inner.received) == passed, "nothing more is passed on to aiohttp (it is mid-frame)"
    assert harness.too_slow == 1


async def test_the_read_clock_stands_still_while_aiohttp_does_not_read() -> None:
    harness = Harness(read_timeout=0.2)
    harness.grant.set()
    harness.inner._reading_paused = True  # its queue is full: the connection's requests are being handled
    harness.gate.data_received(frame(0x2, b"traces 1\n", fin=False))
    await asyncio.sleep(1.0)  # five read timeouts, none of them the client's
    assert harness.too_slow == 0 and harness.limiter.held == MAX_MESSAGE
    harness.inner._reading_paused = False
    harness.gate.take()  # the connection takes a message: aiohttp reads again, and the clock goes on
    await eventually(lambda: harness.too_slow == 1, what="the message to be given up once read again")
    assert harness.limiter.held == 0
