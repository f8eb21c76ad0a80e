"""Loading a pipeline file: a manifest or a bare spec in, a validated pipeline or every problem out."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
from otlp_agent.api import loader, spec
from otlp_agent.api.problems import SpecError

MANIFEST = """\
apiVersion: telemetry.otlp-operator.io/v1alpha1
kind: OTLPPipeline
metadata:
  name: gateway
  namespace: observability
spec:
  processors:
    batch: {timeout: 1s}
  exporters:
    - name: backend
      endpoint: collector:4317
"""


def problems(text: str, source: str = "pipeline.yaml") -> list[str]:
    with pytest.raises(SpecError) as caught:
        loader.load_text(text, source=source)
    return [str(p) for p in caught.value.problems]


def test_a_manifest_gives_its_name_namespace_and_spec() -> None:
    pipeline = loader.load_text(MANIFEST)
    assert (pipeline.name, pipeline.namespace) == ("gateway", "observability")
    assert pipeline.spec.processors.batch.timeout == 1.0
    assert pipeline.spec.exporters[0].endpoint == "collector:4317"


def test_a_bare_spec_runs_as_a_local_pipeline() -> None:
    pipeline = loader.load_text("exporters: [{name: console, debug: {}}]\nmode: deployment\n")
    assert (pipeline.name, pipeline.namespace) == ("local", "default")
    assert pipeline.spec.exporters[0].debug == spec.DebugExporter()


def test_a_manifest_without_namespace_lands_in_default() -> None:
    text = MANIFEST.replace("  namespace: observability\n", "")
    assert loader.load_text(text).namespace == "default"


def test_wrong_api_version_and_kind_are_reported_together_with_spec_problems() -> None:
    text = MANIFEST.replace("telemetry.otlp-operator.io/v1alpha1", "v1").replace("OTLPPipeline", "Pod")
    text += "    - name: backend\n      endpoint: other:4317\n"
    assert problems(text) == [
        "apiVersion: expected telemetry.otlp-operator.io/v1alpha1, got 'v1'",
        "kind: expected OTLPPipeline, got 'Pod'",
        "spec.exporters[1].name: duplicate exporter name 'backend' (also exporters[0])",
    ]


def test_a_manifest_without_spec_says_exporters_are_missing() -> None:
    text = "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\nmetadata: {name: x}\n"
    assert problems(text) == ["spec.exporters: required field is missing"]


def test_metadata_that_is_not_a_mapping_is_reported() -> None:
    text = MANIFEST.replace(
        "metadata:\n  name: gateway\n  namespace: observability\n", "metadata: [gateway]\n"
    )
    assert problems(text) == ["metadata: expected a mapping"]


def test_bad_yaml_reports_line_and_column() -> None:
    text = textwrap.dedent(
        """\
        spec:
          exporters:
            - name: a
           endpoint: b
        """
    )
    [message] = problems(text, source="bad.yaml")
    assert message.startswith("bad.yaml: invalid YAML at line 4, column 4: ")


def test_a_tab_in_indentation_is_reported_where_it_is() -> None:
    [message] = problems("exporters:\n  - name: a\n\tendpoint: b\n")
    assert message.startswith("pipeline.yaml: invalid YAML at line 3, column 1: ")
    assert "\\t" in message


def test_multi_document_files_are_refused() -> None:
    assert problems(MANIFEST + "---\n" + MANIFEST) == ["pipeline.yaml: expected one YAML document, found 2"]


def test_an_empty_file_is_refused() -> None:
    assert problems("# nothing here\n") == ["pipeline.yaml: expected one YAML document, found 0"]


@pytest.mark.parametrize("text", ["- exporters\n", "just a string\n", "42\n"])
def test_a_document_that_is_not_a_mapping_is_refused(text: str) -> None:
    assert problems(text) == ["pipeline.yaml: expected a mapping (an OTLPPipeline manifest or its spec)"]


def test_load_file_reads_a_manifest(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    assert loader.load_file(path).name == "gateway"


def test_a_missing_file_is_reported_with_its_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as caught:
        loader.load_file(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}: cannot read file: No such file or directory"]


def test_a_directory_is_reported_as_unreadable(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SpecError) as caught:
        loader.load_file(tmp_path)
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}: cannot read file: Is a directory"]


def test_problems_of_a_file_carry_its_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("a: 1\n---\nb: 2\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        loader.load_file(path)
    assert [p.path for p in caught.value.problems] == [str(path)]


def test_load_document_takes_an_already_parsed_manifest() -> None:
    document = {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": "n", "namespace": "ns"},
        "spec": {"exporters": [{"name": "e", "debug": {}}]},
    }
    pipeline = loader.load_document(document)
    assert (pipeline.name, pipeline.namespace, pipeline.spec.exporters[0].name) == ("n", "ns", "e")


def test_a_file_that_is_not_utf8_is_a_problem_not_a_traceback(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SpecError) as caught:
        loader.load_file(path)
    assert [p.path for p in caught.value.problems] == [str(path)]
    assert "not UTF-8" in caught.value.problems[0].message
