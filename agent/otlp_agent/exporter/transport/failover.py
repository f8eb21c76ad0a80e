"""Ordered failover endpoints (`exporters[].endpoints`): one transport per endpoint, one active at a time.

The first endpoint is active at start. After `FAILOVER_AFTER` consecutive retryable failures (connection
errors, UNAVAILABLE / 503, timeouts, ...) of the active endpoint, the next one in the list becomes active,
wrapping around after the last. An answer that is not retryable (e.g. 400) means the endpoint is up, so it
resets the count and never fails over. The agent stays on an endpoint while it works: it does not return
to the first one by itself (a flapping primary would otherwise split traffic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from otlp_agent.exporter.batcher import Batch
from otlp_agent.exporter.result import ExportResult
from otlp_agent.exporter.transport.base import Transport

#: Consecutive retryable failures of the active endpoint before the next one takes over.
FAILOVER_AFTER = 3


class FailoverTransport:
    """A Transport over several endpoints' transports; `on_switch(old, new)` reports a failover."""

    def __init__(
        self,
        endpoints: list[str],
        transports: list[Transport],
        on_switch: Callable[[int, int], None] = lambda old, new: None,
        failover_after: int = FAILOVER_AFTER,
    ) -> None:
        assert len(endpoints) == len(transports) >= 1
        self.endpoints = endpoints
        self.transports = transports
        self.failover_after = failover_after
        self.active = 0
        self.failures = 0
        self._on_switch = on_switch

    async def export(self, batch: Batch, timeout: float) -> ExportResult:
        index = self.active
        result = await self.transports[index].export(batch, timeout)
        self._record(index, result)
        if result.ok:
            return result
        return dataclasses.replace(result, message=f"{self.endpoints[index]}: {result.message}")

    def _record(self, index: int, result: ExportResult) -> None:
        if index != self.active:
            return  # an attempt that started before the last failover says nothing about the new endpoint
        if result.ok or not result.retryable:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.failover_after and len(self.transports) > 1:
            old, self.active, self.failures = index, (index + 1) % len(self.transports), 0
            self._on_switch(old, self.active)

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()
