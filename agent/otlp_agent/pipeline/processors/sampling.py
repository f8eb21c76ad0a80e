"""Consistent probability sampling (`processors.sampling`), per the OpenTelemetry specification
"TraceState: Probability Sampling" and "TraceState Handling".

Every span has a 56-bit randomness value R: the `rv` sub-key of the `ot` entry of its tracestate when
present (14 hex digits), otherwise the last 7 bytes of its trace id. A sampler with rejection threshold T
keeps it when R >= T, with T = (1 - probability) * 2^56 rounded to `precision` hex digits. Every agent, and
every SDK sampling by trace id at the same ratio, decides alike for a whole trace.

The agent is a downstream sampler. An incoming threshold T_s (`th`, kept only when consistent: R >= T_s)
combines with the configured probability p:
- proportional: T_o = threshold(p * probability(T_s)); kept when R >= T_o; outputs ~p of what arrives;
- equalizing: T_o = max(T_s, threshold(p)); outputs spans at probability p overall.
A kept span's tracestate gets `th` = T_o in its `ot` entry (other sub-keys, `rv` included, and other
vendors' entries are kept; the `ot` entry moves to the front, as W3C asks of a modified entry). A span
without randomness (no `rv`, trace id not 16 bytes or all zero) is dropped and counted.

Log records have no tracestate: those with a trace id use its last 7 bytes; the others get R from the first
7 bytes of SHA-256(hashSeed as 4 bytes big-endian + the record's bytes), so agents with the same seed decide
alike. Records are kept when R >= threshold(p); nothing is written into them.
"""

from __future__ import annotations

import hashlib
import math

from otlp_agent.api import spec

MAX = 1 << 56  # 2^56: thresholds and randomness values are 56-bit
_HEX = frozenset("0123456789abcdef")
_MAX_OT_VALUE = 256


def threshold(probability: float, precision: int) -> int:
    """The rejection threshold for `probability`, rounded to `precision` significant hex digits (MAX when
    nothing is kept)."""
    if probability >= 1.0:
        return 0
    if probability < 2.0**-56:
        return MAX
    exact = MAX - round(probability * MAX)  # as the SDKs compute it: p * 2^56 is exact
    # Digits of precision count from the first digit that is not an f (as the specification's reference
    # algorithm does), so small probabilities keep their precision.
    leading_f = max(0, -math.frexp(probability)[1] // 4)
    digits = min(14, precision + leading_f)
    unit = 1 << (4 * (14 - digits))
    return min(MAX - 1, (exact + unit // 2) // unit * unit)


def probability(threshold_value: int) -> float:
    return (MAX - threshold_value) / MAX


def encode(threshold_value: int) -> str:
    """The `th` value: 14 hex digits without trailing zeros ("0" for 100%)."""
    return "0" if threshold_value == 0 else f"{threshold_value:014x}".rstrip("0")


def decode(value: str) -> int | None:
    """A `th` value as a threshold, None when invalid."""
    if not 1 <= len(value) <= 14 or not set(value) <= _HEX:
        return None
    return int(value.ljust(14, "0"), 16)


def split_tracestate(state: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the other vendors' entries, the `ot` entry's sub-keys) of a W3C tracestate."""
    others: list[str] = []
    ot: list[tuple[str, str]] = []
    for entry in state.split(","):
        entry = entry.strip(" \t")
        if not entry:
            continue
        if entry.startswith("ot="):
            for member in entry[3:].split(";"):
                key, _, value = member.partition(":")
                if key:
                    ot.append((key, value))
        else:
            others.append(entry)
    return others, ot


class TraceSampler:
    """Decides spans from their trace id and tracestate; the caller removes what is not kept."""

    def __init__(self, settings: spec.Sampling) -> None:
        self.p = settings.ratio
        self.precision = settings.precision
        self.equalizing = settings.mode == spec.SamplingMode.equalizing
        self.base = threshold(self.p, self.precision)
        self._plain_kept = self._tracestate([], [], self.base)  # what a kept span without tracestate gets

    def decide(self, trace_id: bytes, state: str) -> tuple[bool | None, str | None]:
        """(kept, the tracestate to write); kept is None for a span without randomness (dropped)."""
        if not state:  # most spans: randomness from the trace id, the configured threshold, a fixed state
            if len(trace_id) != 16:
                return None, None
            randomness = int.from_bytes(trace_id[9:], "big")
            if not randomness and not any(trace_id):
                return None, None
            return (True, self._plain_kept) if randomness >= self.base else (False, None)
        others, ot = split_tracestate(state)
        values = dict(ot)
        rv = values.get("rv")
        if rv is not None and len(rv) == 14 and set(rv) <= _HEX:
            randomness = int(rv, 16)
        elif len(trace_id) == 16 and any(trace_id):
            randomness = int.from_bytes(trace_id[9:], "big")
        else:
            return None, None
        incoming = decode(values["th"]) if "th" in values else None
        if incoming is not None and randomness < incoming:
            incoming = None  # inconsistent with the span having been kept: erased, as the spec asks
        out = self._threshold(incoming)
        if randomness < out:
            return False, None
        return True, self._tracestate(others, ot, out)

    def _threshold(self, incoming: int | None) -> int:
        if incoming is None:
            return self.base
        if self.equalizing:
            return max(incoming, self.base)
        product = threshold(self.p * probability(incoming), self.precision)
        return max(product, incoming)  # rounding must never lower an earlier stage's threshold

    def _tracestate(self, others: list[str], ot: list[tuple[str, str]], out: int) -> str:
        members = [f"th:{encode(out)}"] + [f"{k}:{v}" for k, v in ot if k != "th"]
        value = ";".join(members)
        if len(value) > _MAX_OT_VALUE:
            value = ";".join(members[1:])  # no room for th: unknown probability rather than a wrong one
        entries = [f"ot={value}"] if value else []
        return ",".join(entries + others)


class LogSampler:
    """Decides log records from their trace id, or a seeded hash of their bytes."""

    def __init__(self, settings: spec.Sampling) -> None:
        self.base = threshold(settings.ratio, settings.precision)
        self.seed = settings.hash_seed.to_bytes(4, "big")

    def randomness(self, trace_id: bytes, record: bytes) -> int:
        if len(trace_id) == 16 and any(trace_id):
            return int.from_bytes(trace_id[9:], "big")
        return int.from_bytes(hashlib.sha256(self.seed + record).digest()[:7], "big")

    def keeps(self, trace_id: bytes, record: bytes) -> bool:
        return self.randomness(trace_id, record) >= self.base
