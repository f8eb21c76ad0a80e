"""Each image installs only what it runs: the project wheel with the `agent` extra, and with the `operator`
extra, each in a fresh virtualenv (what the Dockerfiles do, without Docker).

With only its set, the agent forwards a real request (`otlp-agent run`, OTLP/HTTP in, OTLP/HTTP out to the
test backend) and has no kopf or kubernetes client; the operator renders (`otlp-operator render`) and
validates (its admission check, registered with kopf) and has no grpc, zstandard or isal. Every module of
each side imports with its own set alone.

Bounded: one wheel and two virtualenvs, built side by side from the package index pip already used for the
dev set: the module takes 50 s on this 2-core machine moderately loaded, 110 s at a load average of 10; each
step has a timeout and the module a 600 s hang guard.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import json
import pathlib
import shutil
import subprocess
import sys

import aiohttp
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.agent_process import AgentProcess
from tests.support.otlp_backend import OtlpBackend

#: A hang guard for the whole module (the first test also waits for the virtualenvs); each step has its own.
pytestmark = pytest.mark.timeout(600)

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: What the Dockerfiles copy into their build context.
BUILD_CONTEXT = ("pyproject.toml", "README.md", "agent/otlp_agent", "operator/otlp_operator")
AGENT_ONLY = ("grpc", "zstandard", "isal", "aiohttp", "orjson", "prometheus_client")
OPERATOR_ONLY = ("kopf", "kubernetes")
#: Run in a virtualenv: {module: imports?} for each module named on the command line.
PROBE = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        found[name] = True
    except ModuleNotFoundError:
        found[name] = False
print(json.dumps(found))
"""
#: Run in a virtualenv: import every module of a package; print the ones that fail, with why.
IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        print(f"{module.name}: {exc!r}")
"""
#: Run in the operator's virtualenv: the admission webhook registers with kopf, and the check it runs
#: reports every problem of a bad pipeline with its field path.
WEBHOOK_CHECK = """
import json, kopf
from otlp_operator import validation
from otlp_operator.edge import pipeline_webhook
registry = kopf.OperatorRegistry()
pipeline_webhook.register(registry)
body = {"apiVersion": "telemetry.otlp-operator.io/v1alpha1", "kind": "OTLPPipeline",
        "metadata": {"name": "bad", "namespace": "ns"},
        "spec": {"exporters": [{"name": "a", "endpoint": "collector:4317", "compression": "brotli"}]}}
print(json.dumps(validation.problems(body)))
"""


@dataclasses.dataclass(frozen=True)
class Venv:
    path: pathlib.Path

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)

    def python(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(self.bin("python"), "-c", code, *args)
        assert result.returncode == 0, result.stderr
        return result

    def imports(self, *modules: str) -> dict[str, bool]:
        return dict(json.loads(self.python(PROBE, *modules).stdout))

    def broken_modules(self, package: str) -> list[str]:
        return self.python(IMPORT_ALL, package).stdout.splitlines()


def build_wheel(folder: pathlib.Path) -> pathlib.Path:
    """The project wheel, built from a copy of the Dockerfiles' build context (the tree stays clean)."""
    context = folder / "context"
    for relative in BUILD_CONTEXT:
        source, target = ROOT / relative, context / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        str(folder),
        str(context),
    ]
    subprocess.run(command, check=True, timeout=180)
    (wheel,) = folder.glob("*.whl")
    return wheel


def install(wheel: pathlib.Path, extra: str, path: pathlib.Path) -> Venv:
    """A fresh virtualenv at `path` holding `wheel[extra]` and its dependencies, nothing else (not even pip:
    this interpreter's pip installs into it, without compiling bytecode, which more than halves the time)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    pip = [sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install", "--quiet"]
    subprocess.run([*pip, "--no-compile", f"{wheel}[{extra}]"], check=True, timeout=300)
    return Venv(path)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Venv]:
    folder = tmp_path_factory.mktemp("install-sets")
    wheel = build_wheel(folder)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        built = {extra: pool.submit(install, wheel, extra, folder / extra) for extra in ("agent", "operator")}
        return {extra: future.result() for extra, future in built.items()}


def gzipped_spans(name: str) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=b"\x01" * 16, span_id=b"\x02" * 8
    )
    return gzip.compress(request.SerializeToString())


def test_the_agent_set_has_every_agent_library_and_no_operator_library(venvs: dict[str, Venv]) -> None:
    agent = venvs["agent"]
    assert agent.imports(*AGENT_ONLY, *OPERATOR_ONLY) == {
        **dict.fromkeys(AGENT_ONLY, True),
        **dict.fromkeys(OPERATOR_ONLY, False),
    }
    assert agent.broken_modules("otlp_agent") == []


async def test_the_agent_set_alone_forwards_a_real_request(
    venvs: dict[str, Venv], backend: OtlpBackend, tmp_path: pathlib.Path
) -> None:
    exporter = {"name": "backend", "endpoint": backend.http_endpoint, "protocol": "http/protobuf"}
    config = tmp_path / "pipeline.yaml"
    spec = {"processors": {"batch": {"timeout": "10ms"}}, "exporters": [{**exporter, "compression": "zstd"}]}
    config.write_text(yaml.safe_dump(spec))  # a bare spec is a pipeline file too
    agent = AgentProcess(config, program=[venvs["agent"].bin("otlp-agent")])
    try:
        await agent.start()
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                agent.url("http", "/v1/traces"), data=gzipped_spans("minimal"), headers=headers
            ) as answer,
        ):
            assert answer.status == 200, await answer.text()
        await backend.wait_for_items_async("traces", 1)
    finally:
        agent.stop()
    assert [span.name for _, _, span in backend.spans()] == ["minimal"]
    assert {r.content_encoding for r in backend.requests} == {"zstd"}


def test_the_operator_set_has_every_operator_library_and_none_of_the_agents_data_path(
    venvs: dict[str, Venv],
) -> None:
    operator = venvs["operator"]
    assert operator.imports(*OPERATOR_ONLY, "grpc", "zstandard", "isal") == {
        **dict.fromkeys(OPERATOR_ONLY, True),
        **dict.fromkeys(("grpc", "zstandard", "isal"), False),
    }
    assert operator.broken_modules("otlp_operator") == []


def test_the_operator_set_alone_renders_and_validates(venvs: dict[str, Venv], tmp_path: pathlib.Path) -> None:
    operator = venvs["operator"]
    rendered = operator.run(operator.bin("otlp-operator"), "render", str(ROOT / "examples" / "gateway.yaml"))
    assert rendered.returncode == 0, rendered.stderr
    kinds = {document["kind"] for document in yaml.safe_load_all(rendered.stdout)}
    assert {"ConfigMap", "Deployment", "Service"} <= kinds
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        "spec:\n  exporters:\n    - name: a\n      endpoint: collector:4317\n      timeout: soon\n"
    )
    refused = operator.run(operator.bin("otlp-operator"), "render", str(invalid))
    assert refused.returncode == 2 and "spec.exporters[0].timeout" in refused.stderr, refused.stderr
    problems = json.loads(operator.python(WEBHOOK_CHECK).stdout)
    assert [p.split(":")[0] for p in problems] == ["spec.exporters[0].compression"], problems
