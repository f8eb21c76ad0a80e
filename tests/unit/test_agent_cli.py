"""`otlp-agent validate FILE` as a user runs it: the installed console script, in a subprocess.

Every case is started at once by a module fixture (each run is mostly interpreter start-up), and each
test reads its own result.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
AGENT = pathlib.Path(sys.executable).parent / "otlp-agent"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
# Multi-document examples (several pipelines, like two-teams.yaml) are validated whole, one line each.
VALID_EXAMPLES = [p.name for p in EXAMPLES]
HEADER = "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\n"
BAD_FILES = {
    "bad-second-document.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
    f"{HEADER}metadata: {{name: ok, namespace: a}}\nspec: {{exporters: [{{name: e, debug: {{}}}}]}}\n---\n"
    f"{HEADER}metadata: {{name: broken, namespace: a}}\n"
    "spec: {replicas: -1, exporters: [{name: e, debug: {}}]}\n",
    "bad.yaml": "spec:\n  exporters: [\n",
    "typos.yaml": "replicas: two\nexporters:\n  - name: a\n    endpoint: collector:4317\n"
    "    compresion: gzip\n    timeout: soon\n",
}
# Valid, but its container leaves the agent 192Mi beyond the limiter where it needs 256Mi: a warning.
LOW_MEMORY = (
    f"{HEADER}metadata: {{name: tight, namespace: a}}\n"
    "spec:\n  mode: daemonset\n  resources: {limits: {memory: 384Mi}}\n"
    "  processors: {memoryLimiter: {limit: 192Mi}}\n  exporters: [{name: e, debug: {}}]\n"
    f"---\n{HEADER}metadata: {{name: roomy, namespace: a}}\nspec: {{exporters: [{{name: e, debug: {{}}}}]}}\n"
)


@dataclasses.dataclass(frozen=True)
class Run:
    path: pathlib.Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    folder = tmp_path_factory.mktemp("cli")
    paths = {p.name: p for p in EXAMPLES}
    for name, text in {**BAD_FILES, "low-memory.yaml": LOW_MEMORY}.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    paths["missing.yaml"] = folder / "missing.yaml"
    started = {
        name: subprocess.Popen(
            [str(AGENT), "validate", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, path in paths.items()
    }
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=60)
        results[name] = Run(paths[name], process.returncode, stdout, stderr)
    return results


def refusal_lines(run: Run) -> list[str]:
    """Asserts a clean refusal (exit 2, no stdout, no traceback) and returns its stderr lines."""
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines and all(": " in line for line in lines)
    return lines


@pytest.mark.parametrize("example", VALID_EXAMPLES)
def test_every_example_is_valid(runs: dict[str, Run], example: str) -> None:
    run = runs[example]
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith(": valid")
    assert run.stderr == ""


def test_a_manifest_reports_its_namespace_and_name(runs: dict[str, Run]) -> None:
    assert runs["gateway.yaml"].stdout == "observability/gateway: valid\n"


def test_a_multi_document_file_reports_each_pipeline(runs: dict[str, Run]) -> None:
    assert runs["two-teams.yaml"].stdout.splitlines() == [
        "observability/team-a-gateway: valid",
        "observability/team-b-gateway: valid",
        "team-a/apps: valid",
        "team-b/apps: valid",
        "observability/node-agent: valid",
        "observability/platform-gateway: valid",
    ]


def test_a_container_too_small_for_the_limiter_is_valid_with_a_warning_naming_both_fields(
    runs: dict[str, Run],
) -> None:
    run = runs["low-memory.yaml"]
    assert run.returncode == 0, "a warning, as the webhook admits it: not a refusal"
    assert run.stdout.splitlines() == ["a/tight: valid", "a/roomy: valid"]
    assert run.stderr.splitlines() == [
        "warning: a/tight: spec.resources.limits.memory (384Mi) is below "
        "spec.processors.memoryLimiter.limit (192Mi) + 256Mi of agent overhead (448Mi): the container can "
        "be OOM-killed before the limiter refuses data (see docs/agent.md#memory)"
    ]


def test_a_bad_document_is_named_by_its_place_and_name(runs: dict[str, Run]) -> None:
    [line] = refusal_lines(runs["bad-second-document.yaml"])
    assert line.startswith("document 3 (a/broken): spec.replicas: ")


def test_bad_yaml_is_one_line_with_its_position(runs: dict[str, Run]) -> None:
    run = runs["bad.yaml"]
    [line] = refusal_lines(run)
    assert line.startswith(f"{run.path}: invalid YAML at line 3, column 1")


def test_unknown_fields_and_wrong_types_are_one_line_each(runs: dict[str, Run]) -> None:
    lines = refusal_lines(runs["typos.yaml"])
    assert len(lines) == 3
    assert "spec.exporters[0].compresion: unknown field" in lines
    assert any(line.startswith("spec.replicas: ") for line in lines)
    assert any(line.startswith("spec.exporters[0].timeout: ") for line in lines)


def test_a_missing_file_is_one_line(runs: dict[str, Run]) -> None:
    run = runs["missing.yaml"]
    assert refusal_lines(run) == [f"{run.path}: cannot read file: No such file or directory"]


def test_run_refuses_a_pipeline_ref_that_only_the_operator_can_resolve(tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "ref.yaml"
    manifest.write_text(
        "apiVersion: telemetry.otlp-operator.io/v1alpha1\nkind: OTLPPipeline\nmetadata: {name: n}\n"
        "spec:\n  exporters: [{name: gw, pipelineRef: {name: gateway}}]\n",
        encoding="utf-8",
    )
    validated = subprocess.run(
        [str(AGENT), "validate", str(manifest)], capture_output=True, text=True, timeout=60, check=False
    )
    assert validated.returncode == 0, "a valid manifest for the cluster"
    ran = subprocess.run(
        [str(AGENT), "run", "--config", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        "spec.exporters[0].pipelineRef: is resolved by the operator into an endpoint; "
        "to run this pipeline by hand, set `endpoint`"
    )
