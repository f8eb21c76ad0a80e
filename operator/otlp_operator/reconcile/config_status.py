"""Which agents run the published config: the `ConfigApplied` condition and `status.configRollout` (pure).

Each agent says which config file it runs (the SHA-256 of its bytes) and how its last reload went, at
`/config` on its telemetry port (`otlp_agent.process.reload`); `config_rollout` asks the agent pods that
mount the published ConfigMap and sorts each into one of:

- applied: it runs the published config (its SHA-256 starts with `configHash`);
- rejected: its last reload was of the published config and it could not apply it (its reason is shown;
  it keeps running its earlier config);
- pending: it runs an earlier config (the kubelet has not refreshed its volume yet, or it has not polled);
- unreachable: it could not be asked (not running yet, a NetworkPolicy, a timeout).

`ConfigApplied`:

| status | reason | when |
|---|---|---|
| True | `Applied` | every agent asked runs the published config |
| True | `NoAgents` | no agent pod runs (0 replicas, or none started yet) |
| True | `NotTracked` | sidecar pipelines: injected agents reload the ConfigMap; they are not asked |
| False | `Rejected` | an agent could not apply it (`Degraded` too: `ConfigRejected`) |
| False | `Pending` | some agents run an earlier config, before `expectedBy` |
| False | `Late` | some still do after `expectedBy` |
| False | `Unconfirmed` | every agent asked runs it or is pending, but some could not be asked |
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: Rejection reasons shown in the status (the rest are counted).
REJECTIONS_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class Rollout:
    """The published config and what its agents said, as of one reconcile."""

    hash: str
    config_map: str
    published_at: str
    expected_by: str
    sidecar: bool = False
    applied: int = 0
    pending: int = 0
    unreachable: int = 0
    late: bool = False  # expectedBy has passed
    rejections: tuple[str, ...] = ()  # "pod: reason"

    @property
    def agents(self) -> int:
        return self.applied + self.pending + self.unreachable + len(self.rejections)

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: every agent runs it, or there is none, or this is a sidecar pipeline."""
        return self.sidecar or self.agents == self.applied

    def as_status(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "hash": self.hash,
            "configMap": self.config_map,
            "publishedAt": self.published_at,
            "expectedBy": self.expected_by,
        }
        if self.sidecar:
            return found
        found.update(
            agents=self.agents,
            applied=self.applied,
            pending=self.pending,
            rejected=len(self.rejections),
            unreachable=self.unreachable,
        )
        if self.rejections:
            found["rejections"] = list(self.rejections[:REJECTIONS_SHOWN])
        return found


def condition(rollout: Rollout) -> tuple[bool, str, str]:
    """`ConfigApplied` as (status, reason, message)."""
    config = f"config {rollout.hash}"
    if rollout.sidecar:
        return True, "NotTracked", f"{config} is published; injected sidecars reload it (they are not asked)"
    counts = f"{rollout.applied}/{rollout.agents} agents run {config}"
    if rollout.rejections:
        shown = "; ".join(rollout.rejections[:3])
        more = f" (and {len(rollout.rejections) - 3} more)" if len(rollout.rejections) > 3 else ""
        return False, "Rejected", f"{counts}; {len(rollout.rejections)} could not apply it: {shown}{more}"
    if not rollout.agents:
        return True, "NoAgents", f"{config} is published; no agent runs"
    if rollout.applied == rollout.agents:
        return True, "Applied", counts
    if rollout.pending and rollout.late:
        return (
            False,
            "Late",
            f"{counts}; {rollout.pending} still run an earlier one (expected by {rollout.expected_by})",
        )
    if rollout.pending:
        return False, "Pending", f"{counts}; expected on all by {rollout.expected_by}"
    return False, "Unconfirmed", f"{counts}; {rollout.unreachable} could not be asked"
