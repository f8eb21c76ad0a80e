"""Generated files (CRD, the chart's CRD copy, the configuration reference) match otlp_agent.api.spec.

When one of these tests fails after a spec change: run `make generate` and commit the result.
"""

from __future__ import annotations

import pathlib
import types
import typing
from collections.abc import Iterator

import pydantic
import pytest
from otlp_agent.api import spec

from tools import generate

REPO = pathlib.Path(__file__).resolve().parents[2]
FILES = generate.generated_files()


def test_the_generator_writes_into_this_repository() -> None:
    assert generate.REPO_ROOT == REPO, "else make generate writes (and this reads) files outside the tree"


def test_committed_generated_files_are_up_to_date() -> None:
    stale = generate.stale_files()
    assert stale == [], f"generated files are stale: {stale}; run `make generate` and commit them"


def test_generation_is_deterministic() -> None:
    assert generate.generated_files() == FILES


@pytest.fixture
def fresh_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of just the generated files, freshly written under a temporary root."""
    for relative, content in FILES.items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return tmp_path


def test_a_freshly_generated_tree_is_not_stale(fresh_tree: pathlib.Path) -> None:
    assert generate.stale_files(fresh_tree) == []


@pytest.mark.parametrize("relative", sorted(FILES))
def test_a_one_byte_change_to_a_generated_file_is_detected(fresh_tree: pathlib.Path, relative: str) -> None:
    path = fresh_tree / relative
    text = path.read_text(encoding="utf-8")
    middle = len(text) // 2
    changed = text[:middle] + ("x" if text[middle] != "x" else "y") + text[middle + 1 :]
    path.write_text(changed, encoding="utf-8")
    assert generate.stale_files(fresh_tree) == [relative]


def test_a_deleted_generated_file_is_detected(fresh_tree: pathlib.Path) -> None:
    (fresh_tree / "docs" / "configuration.md").unlink()
    assert generate.stale_files(fresh_tree) == ["docs/configuration.md"]


def test_the_chart_ships_the_same_crd_as_the_crds_folder() -> None:
    assert FILES["crds/otlppipelines.yaml"] == FILES["charts/otlp-operator/files/otlppipelines.yaml"]


def _models_in(annotation: object) -> Iterator[tuple[type[pydantic.BaseModel], bool]]:
    """(model, inside a list) for every spec model an annotation refers to."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation, False
    elif origin is list:
        for arg in typing.get_args(annotation):
            yield from ((model, True) for model, _ in _models_in(arg))
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def field_paths(model: type[pydantic.BaseModel], prefix: str) -> Iterator[str]:
    """Every camelCase field path under `model`, lists written as `[]` like the reference does."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        yield path
        for child, in_list in _models_in(field.annotation):
            yield from field_paths(child, path + ("[]" if in_list else ""))


def test_field_paths_walk_reaches_deep_fields() -> None:
    paths = set(field_paths(spec.OTLPPipelineSpec, "spec"))
    assert "spec.exporters[].retry.initialInterval" in paths
    assert "spec.receivers.otlp.http.cors.maxAge" in paths
    assert "spec.routes.rules[].match[].in" in paths


def test_the_configuration_reference_lists_every_field_of_the_spec() -> None:
    reference = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [
        path for path in field_paths(spec.OTLPPipelineSpec, "spec") if f"| `{path}` |" not in reference
    ]
    assert missing == []
