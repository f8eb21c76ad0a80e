"""When the operator looks at a config rollout again (`config_rollout.followup`): agents that cannot be
asked are not re-asked every 15 s once the rollout is late (each ask of an agent that never answers takes
the whole timeout under the pipeline's lock); pending or rejecting agents still are."""

from __future__ import annotations

import dataclasses

from otlp_operator.reconcile import config_rollout, config_status

T0, EXPECTED_BY = "2026-12-02T10:00:00Z", "2026-12-02T10:00:10Z"
UNREACHABLE = config_status.Rollout(
    "abc1234567", "gw-config-0f0f0f0f0f", T0, EXPECTED_BY, applied=3, unreachable=500
)


def test_agents_that_cannot_be_asked_are_left_to_the_drift_check_once_the_rollout_is_late() -> None:
    assert (
        config_rollout.followup(UNREACHABLE) == config_rollout.LOOK_SOON
    )  # before expectedBy: pods starting
    unconfirmed = dataclasses.replace(UNREACHABLE, late=True)
    assert config_status.condition(unconfirmed)[1] == "Unconfirmed"
    assert config_rollout.followup(unconfirmed) is None


def test_pending_or_rejecting_agents_are_still_looked_at_every_15_s_after_expected_by() -> None:
    late = dataclasses.replace(UNREACHABLE, late=True)
    assert config_rollout.followup(dataclasses.replace(late, pending=1)) == config_rollout.LOOK_LATER
    rejected = dataclasses.replace(late, rejections=("gw-0: caFile /etc/ca.pem: no such file",))
    assert config_rollout.followup(rejected) == config_rollout.LOOK_LATER
