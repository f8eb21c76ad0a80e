"""Loading an agent's configuration from a file: an OTLPPipeline manifest, or just its spec.

The same YAML a user applies with kubectl runs the agent locally, and the operator's rendered ConfigMap is
exactly such a manifest. `load_all_file` reads a multi-document file (several pipelines, like a
`kubectl apply -f` bundle); documents of other kinds (a Namespace) are skipped. Every failure
(unreadable file, bad YAML, wrong kind, invalid spec) becomes a
`problems.SpecError` listing problems with field paths, never a traceback.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from otlp_agent.api import rules, spec
from otlp_agent.api.problems import Problem, SpecError

_MANIFEST_KEYS = {"apiVersion", "kind", "metadata", "spec"}


@dataclasses.dataclass(frozen=True)
class OTLPPipeline:
    """A validated pipeline and where it came from."""

    name: str
    namespace: str
    spec: spec.OTLPPipelineSpec


def load_file(path: str | pathlib.Path) -> OTLPPipeline:
    """Read and validate one pipeline file; raise SpecError with every problem."""
    return load_text(_read(path), source=str(path))


def load_all_file(path: str | pathlib.Path) -> list[OTLPPipeline]:
    """Every OTLPPipeline of a (multi-document) file, validated; SpecError with every problem of every
    document, each path prefixed with the document's place and name when the file has several."""
    return load_all_text(_read(path), source=str(path))


def _read(path: str | pathlib.Path) -> str:
    try:
        return pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([Problem(str(path), f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem(str(path), f"not UTF-8 text (byte {exc.start}): is this a YAML file?")]
        ) from None


def load_runnable(path: str | pathlib.Path) -> OTLPPipeline:
    """`load_file` for a pipeline the agent is about to run: also refuses what only the operator resolves.

    A `pipelineRef` names another pipeline's Service; the operator renders it into a concrete `endpoint`
    in the agent's ConfigMap. A manifest run by hand has nobody to resolve it, so it is refused here
    rather than started with an exporter that sends nowhere.
    """
    pipeline = load_file(path)
    unresolved = [
        Problem(
            f"spec.exporters[{index}].pipelineRef",
            "is resolved by the operator into an endpoint; to run this pipeline by hand, set `endpoint`",
        )
        for index, exporter in enumerate(pipeline.spec.exporters)
        if exporter.pipeline_ref is not None
    ]
    if unresolved:
        raise SpecError(unresolved)
    return pipeline


def load_text(text: str, source: str = "<config>") -> OTLPPipeline:
    """Validate pipeline YAML text (a manifest or a bare spec)."""
    documents = _documents(text, source)
    if len(documents) != 1:
        raise SpecError([Problem(source, f"expected one YAML document, found {len(documents)}")])
    return load_document(documents[0], source)


def load_all_text(text: str, source: str = "<config>") -> list[OTLPPipeline]:
    """Validate every OTLPPipeline of a YAML stream (documents of other kinds are skipped)."""
    documents = _documents(text, source)
    if len(documents) == 1:
        return [load_document(documents[0], source)]
    pipelines: list[OTLPPipeline] = []
    problems: list[Problem] = []
    for number, document in enumerate(documents, start=1):
        if isinstance(document, dict) and document.get("kind") not in (None, spec.KIND):
            continue  # a Namespace or a Secret beside the pipelines
        try:
            pipelines.append(load_document(document, source))
        except SpecError as exc:
            where = f"document {number}{_named(document)}"
            problems += [Problem(f"{where}: {p.path}", p.message) for p in exc.problems]
    if problems:
        raise SpecError(problems)
    if not pipelines:
        raise SpecError([Problem(source, f"no {spec.KIND} in {len(documents)} YAML documents")])
    return pipelines


def _named(document: Any) -> str:
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict) or "name" not in metadata:
        return ""
    return f" ({metadata.get('namespace', 'default')}/{metadata['name']})"


def _documents(text: str, source: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise SpecError(
            [Problem(source, f"invalid YAML at {where}: {getattr(exc, 'problem', exc)}")]
        ) from None


def load_document(document: Any, source: str = "<config>") -> OTLPPipeline:
    """Validate an already-parsed document (a manifest dict or a bare spec dict)."""
    if not isinstance(document, dict):
        raise SpecError([Problem(source, "expected a mapping (an OTLPPipeline manifest or its spec)")])
    if not _MANIFEST_KEYS & document.keys():
        return OTLPPipeline("local", "default", rules.validate_spec(document))
    problems = _manifest_header_problems(document)
    try:
        parsed = rules.validate_spec(document.get("spec", {}))
    except SpecError as exc:
        problems += exc.problems
    if problems:
        raise SpecError(problems)
    metadata = document.get("metadata") or {}
    return OTLPPipeline(str(metadata.get("name", "local")), str(metadata.get("namespace", "default")), parsed)


def _manifest_header_problems(document: dict[str, Any]) -> list[Problem]:
    problems = []
    expected_api = f"{spec.API_GROUP}/{spec.API_VERSION}"
    if document.get("apiVersion") != expected_api:
        problems.append(Problem("apiVersion", f"expected {expected_api}, got {document.get('apiVersion')!r}"))
    if document.get("kind") != spec.KIND:
        problems.append(Problem("kind", f"expected {spec.KIND}, got {document.get('kind')!r}"))
    if not isinstance(document.get("metadata", {}), dict):
        problems.append(Problem("metadata", "expected a mapping"))
    return problems
