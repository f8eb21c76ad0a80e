"""Checking an OTLPPipeline object with the agent's own models, for the webhook and for reconcile.

Both use `otlp_agent.api.loader.load_document`, the function the agent itself loads its config with, so
"accepted by the operator" and "runnable by the agent" cannot drift apart. Every problem is reported
with its field path (`spec.exporters[0].endpoint: ...`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from otlp_agent.api import loader
from otlp_agent.api.problems import SpecError


def plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (kopf hands over read-only mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    return value


def parse(body: Mapping[str, Any]) -> loader.OTLPPipeline:
    """The validated pipeline; raises SpecError listing every problem."""
    document = plain(body)
    document.pop("status", None)
    return loader.load_document(document, source=_where(document))


def problems(body: Mapping[str, Any]) -> list[str]:
    """Every problem of the object as `path: message` lines (empty when valid)."""
    try:
        parse(body)
    except SpecError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def rejection(body: Mapping[str, Any], found: list[str]) -> str:
    """The admission denial message: which object, how many problems, one per line."""
    metadata = body.get("metadata") or {}
    who = f"{metadata.get('namespace', '')}/{metadata.get('name') or metadata.get('generateName', '')}"
    count = f"{len(found)} problem{'s' if len(found) != 1 else ''}"
    return f"OTLPPipeline {who.lstrip('/')} is invalid ({count}):\n" + "\n".join(f"- {p}" for p in found)


def _where(document: dict[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    return (
        f"{metadata.get('namespace', '')}/{metadata.get('name', '')}" if isinstance(metadata, dict) else "?"
    )
