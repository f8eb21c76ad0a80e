"""What the spec rules say about an invalid pipeline spec, in the forms the spec tests compare."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules
from otlp_agent.api.problems import SpecError


def all_problems(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) of every problem, in order; fails the test when the spec is valid."""
    with pytest.raises(SpecError) as caught:
        rules.validate_spec(body)
    return [(p.path, p.message) for p in caught.value.problems]


def problems(body: dict[str, Any]) -> dict[str, str]:
    """path -> message, for specs with at most one problem per path."""
    found = all_problems(body)
    assert len({path for path, _ in found}) == len(found), f"two problems at one path: {found}"
    return dict(found)
