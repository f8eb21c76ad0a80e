"""Whether the container that runs a pipeline's agent leaves the agent room beyond its memory limiter.

The agent counts the bytes it holds against `processors.memoryLimiter.limit` and refuses data (a retryable
status) before it holds more; the process needs up to 256 MiB beyond that (the runtime, parse scratch, the
copies of a request being received, socket buffers, the allocator's slack: measured under hostile load
with the default receiver sizes, see docs/agent.md#memory). A container whose memory limit is below
`limit` + 256Mi can be OOM-killed while the limiter still accepts data, for instance while a backend is
down and the queues fill toward the limit, and everything held in memory is lost with it.

The check is advisory: the webhook answers it as an admission warning (never a denial, so objects stored
before it existed keep being accepted, and a user who measured a smaller need with smaller
`maxBodySize` / `maxMessageSize` may keep their limit), reconcile reports it in the `MemoryFits`
condition, and `otlp-agent validate` / `otlp-operator render` print it on stderr (exit status unchanged), so
a file is warned about before it reaches a cluster. It lives in the API package because it reads only the
spec, which both command lines load. The container is the one that will run the agent: the injected sidecar's
(`spec.injection.resources`, or its default) in mode sidecar, `spec.resources` otherwise. A container with
no memory limit is not checked.
"""

from __future__ import annotations

import dataclasses

from otlp_agent.api import loader, spec, units

#: What the agent's process needs beyond `memoryLimiter.limit` with the default receiver sizes.
OVERHEAD = 256 * 2**20
DOCS = "docs/agent.md#memory"
LIMITER_FIELD = "spec.processors.memoryLimiter.limit"
#: Condition reasons (`MemoryFits`).
FITS, NO_LIMIT, TOO_LOW = "Fits", "NoMemoryLimit", "MemoryLimitTooLow"


@dataclasses.dataclass(frozen=True)
class Fit:
    """The agent container's memory limit against what the agent needs."""

    #: The field the container's limit comes from (`spec.resources.limits.memory`, ...).
    field: str
    #: The container's memory limit as written (None: not limited).
    limit: str | None
    #: `memoryLimiter.limit` in bytes.
    limiter: int

    @property
    def needed(self) -> int:
        return self.limiter + OVERHEAD

    @property
    def fits(self) -> bool:
        return self.limit is None or units.quantity(self.limit) >= self.needed

    @property
    def reason(self) -> str:
        if self.limit is None:
            return NO_LIMIT
        return FITS if self.fits else TOO_LOW

    @property
    def message(self) -> str:
        """What was checked, in words naming the fields and their values."""
        limiter = f"{LIMITER_FIELD} ({_size(self.limiter)})"
        if self.limit is None:
            return f"{self.field} is not set: the container's memory is not limited"
        if self.fits:
            return f"{self.field} ({self.limit}) leaves at least 256Mi above {limiter}"
        return (
            f"{self.field} ({self.limit}) is below {limiter} + 256Mi of agent overhead "
            f"({_size(self.needed)}): the container can be OOM-killed before the limiter refuses data "
            f"(see {DOCS})"
        )


def check(pipeline: loader.OTLPPipeline) -> Fit:
    """The memory fit of `pipeline`'s agent container."""
    if pipeline.spec.mode == spec.Mode.sidecar:
        field, resources = "spec.injection.resources", (pipeline.spec.injection or spec.Injection()).resources
    else:
        field, resources = "spec.resources", pipeline.spec.resources
    limiter = pipeline.spec.processors.memory_limiter.limit
    return Fit(f"{field}.limits.memory", resources.limits.memory, limiter)


def warnings(pipeline: loader.OTLPPipeline) -> list[str]:
    """The admission warnings for `pipeline` (empty when its container fits)."""
    fit = check(pipeline)
    return [] if fit.fits else [fit.message]


def _size(value: int) -> str:
    """`value` bytes as a quantity a reader compares at a glance: binary ("448Mi") when exact, else decimal
    ("500M"), else plain bytes."""
    binary = units.format_bytes(value)
    if isinstance(binary, str):
        return binary
    for suffix, unit in (
        ("E", 10**18),
        ("P", 10**15),
        ("T", 10**12),
        ("G", 10**9),
        ("M", 10**6),
        ("k", 1000),
    ):
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
