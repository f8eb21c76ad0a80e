"""`compression: auto`: the codec an exporter sends with, chosen from measurements on its own live batches.

The objective (`compressionAuto`, documented in docs/agent.md): the fewest bytes on the wire among the
candidates whose CPU time per MiB of batch data is within `cpuBudget`; candidates within `TIE` of the
fewest bytes count as equal and the cheapest of them wins; when no candidate fits the budget, the cheapest
wins. The codec in use is kept while it is still within `TIE` of the best in bytes and `CPU_SLACK` of it in
CPU, so measurement noise does not make the choice flap.

Measurements: on the first batch and then every `evaluateEvery` seconds, the start of a batch (`sampleSize`
bytes) is compressed with every usable candidate, in the thread that compresses the batch, timing each with
that thread's CPU clock. `none` is not measured (ratio 1, no CPU). A new measurement counts half in the
figures (exponential smoothing). A codec the backend refuses is no longer used until the exporter is
recreated (restart or config reload). gRPC compresses inside grpcio (zlib at its default level 6), so a gRPC
exporter measures that; an HTTP exporter measures the codecs it runs itself (ISA-L gzip/deflate, zstd).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
import zlib
from collections.abc import Callable, Iterable

from otlp_agent.api import spec
from otlp_agent.otlp import compression
from otlp_agent.telemetry.metrics import AgentMetrics

TIE = 0.02  # candidates within 2% of the fewest bytes count as equal
CPU_SLACK = 1.25  # the codec in use is kept while it costs at most this times the cheapest equal one
BUDGET_SLACK = 1.1  # ... and at most this times the budget (a codec near the budget does not flap)
_MIB = 1024 * 1024
_MIN_SAMPLE = 1024  # smaller batches are sent, not measured: timing them says little
_GRPC_ZLIB_LEVEL = 6  # grpc-core deflates with zlib's default level

#: The threads exporters compress and measure in (zlib, ISA-L and zstd release the GIL).
WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="otlp-compress")


@dataclasses.dataclass(frozen=True)
class Codec:
    """A candidate: a Content-Encoding and its level (None: the codec's default)."""

    name: str
    level: int | None = None

    @classmethod
    def parse(cls, text: str) -> Codec:
        name, _, level = text.partition(":")
        return cls(name, int(level) if level else None)

    @property
    def label(self) -> str:
        return self.name if self.level is None else f"{self.name}:{self.level}"


NONE = Codec("none")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One measurement: `raw` bytes compressed to `wire` bytes in `cpu` seconds."""

    codec: Codec
    raw: int
    wire: int
    cpu: float


@dataclasses.dataclass
class Figures:
    """A codec's smoothed measurements."""

    ratio: float  # bytes before / bytes after
    cpu_per_mib: float  # CPU seconds per MiB before compression

    @property
    def wire_fraction(self) -> float:
        return 1.0 / self.ratio


def http_compress(data: bytes, codec: Codec) -> bytes:
    """What an HTTP exporter sends for `data` with `codec`."""
    return compression.encode(data, codec.name, codec.level)


def grpc_compress(data: bytes, codec: Codec) -> bytes:
    """What grpcio's own compression makes of `data`, for measuring (the channel compresses the real one)."""
    if codec.name == "none":
        return data
    wbits = zlib.MAX_WBITS | 16 if codec.name == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(_GRPC_ZLIB_LEVEL, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def measure(data: bytes, codecs: Iterable[Codec], compress: Callable[[bytes, Codec], bytes]) -> list[Sample]:
    """Compress `data` with each codec, timing it on this thread's CPU clock."""
    samples = []
    for codec in codecs:
        began = time.thread_time()
        wire = len(compress(data, codec))
        samples.append(Sample(codec, len(data), wire, time.thread_time() - began))
    return samples


def choose(figures: dict[Codec, Figures], budget: float, current: Codec | None) -> Codec:
    """The objective, over the codecs that have figures (see the module docstring)."""
    codecs = list(figures)
    within = [c for c in codecs if figures[c].cpu_per_mib <= budget * (BUDGET_SLACK if c == current else 1)]
    if not within:
        return min(codecs, key=lambda c: figures[c].cpu_per_mib)
    fewest = min(figures[c].wire_fraction for c in within)
    equal = [c for c in within if figures[c].wire_fraction <= fewest * (1 + TIE)]
    cheapest = min(equal, key=lambda c: figures[c].cpu_per_mib)
    if current in equal and figures[current].cpu_per_mib <= figures[cheapest].cpu_per_mib * CPU_SLACK + 1e-6:
        return current
    return cheapest


class Chooser:
    """The choice for one exporter (one transport): what to send with, what to measure next. With `metrics`,
    every choice and the figures behind it are reported, and every refused codec counted, under `exporter`."""

    def __init__(
        self,
        settings: spec.CompressionAuto,
        protocol: spec.Protocol,
        exporter: str = "",
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = settings.candidates or (
            ["gzip", "none"] if protocol == spec.Protocol.grpc else ["zstd", "gzip", "none"]
        )
        self.candidates = [Codec.parse(name) for name in names]
        self.budget = settings.cpu_budget  # seconds per MiB
        self.sample_size = settings.sample_size
        self.evaluate_every = settings.evaluate_every
        self.compress = grpc_compress if protocol == spec.Protocol.grpc else http_compress
        self.refused: set[Codec] = set()
        self.figures: dict[Codec, Figures] = {NONE: Figures(1.0, 0.0)} if NONE in self.candidates else {}
        self.current = self.candidates[0]
        self._next_evaluation: float | None = None  # None: at the first batch
        self._exporter = exporter
        self._metrics = metrics
        self._clock = clock

    @property
    def usable(self) -> list[Codec]:
        return [codec for codec in self.candidates if codec not in self.refused]

    def to_measure(self, size: int) -> list[Codec]:
        """The codecs to measure on a batch of `size` bytes about to be sent: every usable one (but none)
        when an evaluation is due, else nothing. Marks the evaluation as done."""
        due = self._next_evaluation is None or self._clock() >= self._next_evaluation
        if not due or size < _MIN_SAMPLE:
            return []
        self._next_evaluation = self._clock() + self.evaluate_every
        return [codec for codec in self.usable if codec != NONE]

    async def evaluate(self, payload: bytes) -> None:
        """Measure the candidates on this batch when an evaluation is due, before it is sent (compressed),
        so it already goes out with the new choice."""
        codecs = self.to_measure(len(payload))
        if codecs:
            samples = await asyncio.get_running_loop().run_in_executor(
                WORKERS, measure, self.sample(payload), codecs, self.compress
            )
            self.record(samples)

    def sample(self, payload: bytes) -> bytes:
        return payload[: self.sample_size]

    def record(self, samples: list[Sample]) -> None:
        """Fold measurements into the figures and choose again."""
        for sample in samples:
            if sample.codec in self.refused or not sample.wire:
                continue
            ratio = sample.raw / sample.wire
            cpu = sample.cpu / (sample.raw / _MIB)
            old = self.figures.get(sample.codec)
            if old is not None:
                ratio, cpu = (old.ratio + ratio) / 2, (old.cpu_per_mib + cpu) / 2
            self.figures[sample.codec] = Figures(ratio, cpu)
        self._choose()

    def refuse(self, codec: Codec) -> bool:
        """The backend refused `codec`: stop using it. False when there is nothing else to send with."""
        if codec == NONE or codec in self.refused:
            return False
        self.refused.add(codec)
        self.figures.pop(codec, None)
        if not self.usable:
            self.candidates.append(NONE)  # every candidate refused: plain bytes are what is left
            self.figures[NONE] = Figures(1.0, 0.0)
        self._choose()
        if self._metrics is not None:
            self._metrics.compression_refused.labels(self._exporter, codec.label).inc()
        return True

    def _choose(self) -> None:
        known = {codec: figures for codec, figures in self.figures.items() if codec not in self.refused}
        if known:
            chosen = choose(known, self.budget, self.current if self.current not in self.refused else None)
        else:
            chosen = self.usable[0]
        self.current = chosen
        if self._metrics is not None:
            self._report(self._metrics)

    def _report(self, metrics: AgentMetrics) -> None:
        """The choice and the figures behind it, as metrics."""
        exporter = self._exporter
        for codec in self.candidates:
            metrics.compression_chosen.labels(exporter, codec.label).set(1 if codec == self.current else 0)
        for codec, figures in self.figures.items():
            metrics.compression_measured_ratio.labels(exporter, codec.label).set(figures.ratio)
            metrics.compression_measured_cpu.labels(exporter, codec.label).set(figures.cpu_per_mib)
