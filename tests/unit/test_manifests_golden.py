"""Golden files: the rendered children of every example and scenario, compared byte for byte.

A change to any builder shows up as a reviewable diff of tests/unit/golden/*.yaml. Regenerate with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_manifests_golden.py` and review the diff before
committing. Examples whose spec still uses "not implemented yet" features are rendered from the models
anyway (see tests/support/manifest_cases.py).
"""

from __future__ import annotations

import os

import pytest
from otlp_operator.edge import cli

from tests.support import manifest_cases as support

CASES = support.all_cases()
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_children_match_the_golden_file(case: str) -> None:
    rendered = cli.dump_stream(support.build(CASES[case]))
    golden = support.GOLDEN / f"{case}.yaml"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"no golden file for {case}: run with UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(encoding="utf-8"), f"{golden.name} is stale: run with UPDATE_GOLDEN=1"


def test_every_golden_file_belongs_to_an_example_or_scenario() -> None:
    stale = {path.stem for path in support.GOLDEN.glob("*.yaml")} - set(CASES)
    if UPDATE:
        for name in stale:
            (support.GOLDEN / f"{name}.yaml").unlink()
        stale = set()
    assert not stale, f"golden files without an example or scenario: {sorted(stale)}"


def test_the_examples_are_found() -> None:
    # Guards the glob: a wrong path would silently leave every example without a golden test.
    assert {path.stem for path in support.EXAMPLES} >= {"gateway", "node-agent", "sidecar"}
