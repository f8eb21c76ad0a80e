"""The spec tests' common ground: the exporter they build specs around (`GRPC`, `with_exporter`), and what
the spec rules say about an invalid pipeline spec, in the forms they compare (`all_problems`, `problems`)."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import rules
from otlp_agent.api.problems import SpecError

GRPC = {"name": "backend", "endpoint": "collector:4317"}


def with_exporter(**fields: Any) -> dict[str, Any]:
    return {"exporters": [{**GRPC, **fields}]}


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
