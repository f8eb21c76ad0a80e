"""The MemoryFits condition: the agent container's memory limit against memoryLimiter.limit + 256Mi, a
Warning Event when it falls short, and an invalid spec leaving it as the running agents had it."""

from __future__ import annotations

from typing import Any

from otlp_agent.api import memory_fit
from otlp_operator.reconcile import status

from tests.support.status_cases import T0, T1

MiB = 2**20
FIELD = "spec.resources.limits.memory"
LOW = memory_fit.Fit(FIELD, "384Mi", 192 * MiB)
FITS = memory_fit.Fit(FIELD, "448Mi", 192 * MiB)


def memory_condition(found: dict[str, Any]) -> tuple[str, str, str]:
    (condition,) = [c for c in found["conditions"] if c["type"] == "MemoryFits"]
    return condition["status"], condition["reason"], condition["message"]


def observe(memory: memory_fit.Fit | None, problems: tuple[str, ...] = ()) -> status.Observation:
    return status.Observation(generation=1, problems=problems, sidecar=True, config_hash="abc", memory=memory)


def memory_transitions(transitions: list[status.Transition]) -> list[tuple[str, bool]]:
    return [(t.condition.reason, t.warning) for t in transitions if t.condition.type == "MemoryFits"]


def test_a_container_limit_below_the_limiter_plus_overhead_is_a_warning_naming_the_numbers() -> None:
    found, transitions = status.compute(observe(LOW), {}, T0)
    assert memory_condition(found) == ("False", memory_fit.TOO_LOW, LOW.message)
    assert "(384Mi) is below spec.processors.memoryLimiter.limit (192Mi) + 256Mi" in LOW.message
    assert memory_transitions(transitions) == [(memory_fit.TOO_LOW, True)]
    (event,) = [t for t in transitions if t.condition.type == "MemoryFits"]
    assert event.message == f"MemoryFits is False: {LOW.message}"


def test_raising_the_limit_clears_it_with_a_normal_event() -> None:
    low, _ = status.compute(observe(LOW), {}, T0)
    fixed, transitions = status.compute(observe(FITS), low, T1)
    assert memory_condition(fixed) == (
        "True",
        memory_fit.FITS,
        f"{FIELD} (448Mi) leaves at least 256Mi above spec.processors.memoryLimiter.limit (192Mi)",
    )
    assert memory_transitions(transitions) == [(memory_fit.FITS, False)]
    again, transitions = status.compute(observe(FITS), fixed, T1)
    assert transitions == [] and again == fixed  # reported once, not at every reconcile


def test_no_memory_limit_is_not_a_problem() -> None:
    found, transitions = status.compute(observe(memory_fit.Fit(FIELD, None, 4096 * MiB)), {}, T0)
    assert memory_condition(found)[:2] == ("True", memory_fit.NO_LIMIT)
    assert memory_transitions(transitions) == [(memory_fit.NO_LIMIT, False)]


def test_an_invalid_spec_keeps_what_the_running_agents_have() -> None:
    low, _ = status.compute(observe(LOW), {}, T0)
    invalid, transitions = status.compute(observe(None, ("spec.replicas: bad",)), low, T1)
    assert memory_condition(invalid) == memory_condition(low) and memory_transitions(transitions) == []
    never_valid, transitions = status.compute(observe(None, ("spec.replicas: bad",)), {}, T0)
    assert memory_condition(never_valid)[:2] == ("False", "InvalidSpec")
    assert memory_transitions(transitions) == [("InvalidSpec", False)]  # ConfigValid already warns
