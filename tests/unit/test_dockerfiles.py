"""The two Dockerfiles, checked without building (no Docker here): pinned base, every COPY source present and
not excluded by .dockerignore, a non-root numeric USER matching the uid the chart and the operator expect,
and entrypoints that are the project's console scripts."""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
import re
import shlex
import tomllib

import pytest
import yaml
from otlp_operator.manifests import container, image

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILES = {"otlp-operator": ROOT / "operator" / "Dockerfile", "otlp-agent": ROOT / "agent" / "Dockerfile"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
UID = 10001


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: pathlib.Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip()))
    return found


def final_stage(path: pathlib.Path) -> list[Instruction]:
    steps = instructions(path)
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def build_args(path: pathlib.Path) -> dict[str, str]:
    args = [
        step.args.split("=", 1) for step in instructions(path) if step.keyword == "ARG" and "=" in step.args
    ]
    return {name: value for name, value in args}


def exec_form(step: Instruction) -> list[str]:
    return list(yaml.safe_load(step.args))


def glob_regex(pattern: str) -> str:
    """Docker's (Go filepath.Match) globs plus `**`: `*` stays within a path segment, `**` crosses them."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return out + r"\Z"


def dockerignore_allows(relative: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes; a pattern matching a
    directory covers everything below it."""
    included = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = glob_regex(pattern)
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.match(regex, prefix) for prefix in prefixes):
            included = negate
    return included


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_base_image_is_an_exactly_pinned_python_3_11_slim(name: str) -> None:
    base = build_args(DOCKERFILES[name])["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    froms = [step.args for step in instructions(DOCKERFILES[name]) if step.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_both_images_share_one_base() -> None:
    assert len({build_args(path)["PYTHON_IMAGE"] for path in DOCKERFILES.values()}) == 1


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copy_source_exists_and_reaches_the_build_context(name: str) -> None:
    copies = [
        step
        for step in instructions(DOCKERFILES[name])
        if step.keyword == "COPY" and "--from" not in step.args
    ]
    assert copies
    for step in copies:
        *sources, _ = shlex.split(step.args)
        for source in sources:
            path = ROOT / source
            assert path.exists(), source
            files = (
                [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            )
            assert files
            for file in files:
                assert dockerignore_allows(file.relative_to(ROOT).as_posix()), file


def test_the_build_context_leaves_out_what_the_images_do_not_need() -> None:
    for relative in (".venv/bin/python", ".git/HEAD", "tests/unit/test_dockerfiles.py", "bench/run.py"):
        assert not dockerignore_allows(relative), relative
    assert not dockerignore_allows("agent/otlp_agent/__pycache__/app.cpython-311.pyc")


#: The extra each image installs, and libraries of the other side that must not be in it.
EXTRAS = {
    "otlp-agent": ("agent", {"kopf", "kubernetes"}),
    "otlp-operator": ("operator", {"grpcio", "isal", "zstandard"}),
}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_image_installs_the_project_wheel_with_its_own_extra_into_the_final_stage(name: str) -> None:
    extra, _ = EXTRAS[name]
    runs = " ".join(step.args for step in instructions(DOCKERFILES[name]) if step.keyword == "RUN")
    assert "pip wheel --no-deps --wheel-dir /wheels ." in runs
    assert f'pip install "$(ls /wheels/*.whl)[{extra}]"' in runs
    copies = [step.args for step in final_stage(DOCKERFILES[name]) if step.keyword == "COPY"]
    assert copies == ["--from=build /opt/otlp /opt/otlp"]
    env = " ".join(step.args for step in final_stage(DOCKERFILES[name]) if step.keyword == "ENV")
    assert "PATH=/opt/otlp/bin:$PATH" in env


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_image_runs_as_the_non_root_uid_the_chart_and_operator_expect(name: str) -> None:
    users = [step.args for step in final_stage(DOCKERFILES[name]) if step.keyword == "USER"]
    assert users == [f"{UID}:{UID}"]
    chart_values = yaml.safe_load((ROOT / "charts" / "otlp-operator" / "values.yaml").read_text())
    assert chart_values["podSecurityContext"]["runAsUser"] == UID
    assert container.RUN_AS_USER == UID


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_entrypoint_is_the_console_script_of_the_same_name(name: str) -> None:
    (entrypoint,) = [
        exec_form(step) for step in final_stage(DOCKERFILES[name]) if step.keyword == "ENTRYPOINT"
    ]
    assert entrypoint == [name]
    module_name, _, function = PYPROJECT["project"]["scripts"][name].partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))


def test_the_operator_images_default_command_is_accepted_by_the_operator() -> None:
    from otlp_operator.edge import cli

    (command,) = [
        exec_form(step) for step in final_stage(DOCKERFILES["otlp-operator"]) if step.keyword == "CMD"
    ]
    args = cli.build_parser().parse_args(command)
    assert args.command == "run" and args.all_namespaces and args.health_port == 8080


def test_the_agent_image_is_the_one_the_operator_and_chart_name() -> None:
    chart_values = yaml.safe_load((ROOT / "charts" / "otlp-operator" / "values.yaml").read_text())
    assert chart_values["agent"]["image"]["repository"] == image.REPOSITORY
    # The DaemonSet's queue-directory init container runs `python3` from the agent image: the official
    # python base puts it on PATH, and the final stage is that base.
    assert final_stage(DOCKERFILES["otlp-agent"])[0].args == "${PYTHON_IMAGE}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_images_extra_leaves_out_the_other_sides_libraries(name: str) -> None:
    extra, absent = EXTRAS[name]
    project = PYPROJECT["project"]
    installed = requirement_names(project["dependencies"] + project["optional-dependencies"][extra])
    assert installed and not installed & absent, installed & absent
