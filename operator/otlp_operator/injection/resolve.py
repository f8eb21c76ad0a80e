"""Which pipeline a pod gets, decided from annotations and the known pipelines (pure).

The request is the annotation `telemetry.otlp-operator.io/inject` on the pod, else on its namespace
(the pod's wins, so a pod can opt out of its namespace's default with `"false"`):

| value | meaning |
|---|---|
| `"<name>"` | the pipeline `<name>` in the pod's namespace |
| `"<namespace>/<name>"` | the pipeline `<name>` in `<namespace>` |
| `"true"` | the one `mode: sidecar` pipeline of the pod's namespace (none or several: not injected) |
| `"false"` (or absent) | no injection |

The pipeline's `spec.injection.allowed` then decides whether the pod may use it: the pod's namespace is
the pipeline's own or one of `allowed.namespaces`, and the pod carries every label of
`allowed.podSelector`. Gateway and node-agent pipelines may set `injection.allowed` too (they inject env
wiring only); without it they serve pods of their own namespace.

A sidecar is injected with the ConfigMap the operator published for the pipeline
(`status.configRollout.configMap`, which exists; an operator that published before it wrote that field
named it after `status.configHash`): the webhook never computes it itself, since the published config is
the pipeline with its `pipelineRef`s resolved, which only the reconcile can do. The container (ports,
probes, resources, Secret mounts) is built from the spec, so it must be the spec that config was published
from: reconcile records its generation (`status.configRollout.generation`), and a spec newer than that
(edited, not reconciled yet or failing to) has no published config of its own (`behind`; the catalog then
keeps serving the pipeline's previous target). A sidecar pipeline with no published config for its spec
(just created, never valid, or edited and not published yet with no earlier target known) injects nothing
(`NotPublished`). So does a pod of another allowed namespace that holds no copy of the ConfigMap yet
(`status.configRollout.copiedTo`): it could not mount it. A status written by an operator that did not
record the generation or the copies is trusted as is.

Every outcome but "not requested" and "opted out" that injects nothing is a warning the webhook reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from otlp_agent.api import loader, spec
from otlp_agent.api.problems import SpecError

from otlp_operator import naming, validation
from otlp_operator.injection import markers


@dataclasses.dataclass(frozen=True)
class Target:
    """A pipeline as the webhook knows it: parsed once per change (or why it is invalid), and the ConfigMap
    the operator published from that very spec (None: none yet)."""

    namespace: str
    name: str
    pipeline: loader.OTLPPipeline | None
    config_map: str | None = None
    problems: tuple[str, ...] = ()
    uid: str = ""
    #: The spec's generation (metadata.generation; 0 when unknown).
    generation: int = 0
    #: The published config is of an earlier generation of the spec (so `config_map` is None).
    behind: bool = False
    #: The other namespaces holding a copy of `config_map` (None: not recorded, so assumed everywhere).
    copied_to: frozenset[str] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def sidecar(self) -> bool:
        return self.pipeline is not None and self.pipeline.spec.mode == spec.Mode.sidecar


@dataclasses.dataclass(frozen=True)
class Decision:
    """Inject `target`, or not (`reason`, `message`); `warning` when the pod asked and was not served."""

    target: Target | None
    reason: str
    message: str
    warning: bool = False
    #: The pipeline the pod asked for by name, when it exists (the webhook tells it too).
    about: Target | None = None


Catalog = Callable[[str], Iterable[Target]]  # namespace -> the pipelines known there


def request(pod: dict[str, Any], namespace_annotations: dict[str, str] | None) -> str | None:
    """The pod's inject annotation, else its namespace's (None when neither asks)."""
    own = markers.annotations_of(pod).get(markers.INJECT_ANNOTATION)
    if own is not None:
        return own.strip()
    inherited = (namespace_annotations or {}).get(markers.INJECT_ANNOTATION)
    return None if inherited is None else inherited.strip()


def decide(
    pod: dict[str, Any], namespace: str, namespace_annotations: dict[str, str] | None, catalog: Catalog
) -> Decision:
    """What to inject into `pod` (in `namespace`), and why."""
    asked = request(pod, namespace_annotations)
    if asked is None or asked == "":
        return Decision(None, "NotRequested", "no inject annotation on the pod or its namespace")
    if asked.lower() == "false":
        return Decision(None, "OptedOut", "the inject annotation is false")
    if asked.lower() == "true":
        found = _only_sidecar(namespace, catalog)
        if isinstance(found, Decision):
            return found
        target = found
    else:
        named = _named(asked, namespace, catalog)
        if isinstance(named, Decision):
            return named
        target = named
    return _check(pod, namespace, target)


def _only_sidecar(namespace: str, catalog: Catalog) -> Target | Decision:
    sidecars = sorted((t for t in catalog(namespace) if t.sidecar), key=lambda t: t.name)
    if len(sidecars) == 1:
        return sidecars[0]
    if not sidecars:
        why = f'inject "true" needs one mode: sidecar pipeline in namespace {namespace}; there is none'
        return Decision(None, "NoSidecarPipeline", why, warning=True)
    names = ", ".join(t.name for t in sidecars)
    why = f'inject "true" is ambiguous in namespace {namespace}: {len(sidecars)} sidecar pipelines ({names})'
    return Decision(None, "AmbiguousPipeline", f"{why}; name one", warning=True)


def _named(asked: str, namespace: str, catalog: Catalog) -> Target | Decision:
    ns, _, name = asked.rpartition("/")
    ns = ns or namespace
    if not naming.is_dns_label(ns) or not name or "/" in ns:
        why = f'inject annotation "{asked}" is not "<pipeline>", "<namespace>/<pipeline>", "true" or "false"'
        return Decision(None, "InvalidRequest", why, warning=True)
    target = next((t for t in catalog(ns) if t.name == name), None)
    if target is None:
        return Decision(None, "UnknownPipeline", f"pipeline {ns}/{name} does not exist", warning=True)
    return target


def _check(pod: dict[str, Any], namespace: str, target: Target) -> Decision:
    if target.pipeline is None:
        why = f"pipeline {target.key} is invalid: {'; '.join(target.problems)}"
        return Decision(None, "InvalidPipeline", why, warning=True, about=target)
    injection = target.pipeline.spec.injection or spec.Injection()
    namespaces = {target.namespace, *injection.allowed.namespaces}
    if namespace not in namespaces:
        why = f"pipeline {target.key} does not allow pods of namespace {namespace} (allowed: "
        why += f"{', '.join(sorted(namespaces))})"
        return Decision(None, "NotAllowed", why, warning=True, about=target)
    labels = markers.labels_of(pod)
    missing = {k: v for k, v in injection.allowed.pod_selector.items() if labels.get(k) != v}
    if missing:
        wanted = ",".join(f"{k}={v}" for k, v in sorted(missing.items()))
        why = f"pipeline {target.key} allows only pods labelled {wanted}"
        return Decision(None, "NotAllowed", why, warning=True, about=target)
    if target.sidecar and not target.config_map:
        why = f"pipeline {target.key} has no published config yet (its status says why)"
        if target.behind:
            why = f"pipeline {target.key} generation {target.generation} is not published yet"
            why += " (its status says why)"
        return Decision(None, "NotPublished", why, warning=True, about=target)
    if target.sidecar and not _copied(target, namespace):
        why = f"the config of pipeline {target.key} is not copied into namespace {namespace} yet"
        return Decision(
            None, "NotPublished", f"{why} (the operator's log says why)", warning=True, about=target
        )
    kind = "a sidecar agent" if target.sidecar else f"wiring to its {target.pipeline.spec.mode.value} agents"
    return Decision(target, "Injected", f"{kind} of pipeline {target.key}", about=target)


def _copied(target: Target, namespace: str) -> bool:
    """A pod of `namespace` can mount the target's ConfigMap: its own namespace, or one the status says
    holds a copy (any, when the status does not say)."""
    return namespace == target.namespace or target.copied_to is None or namespace in target.copied_to


def target_of(body: dict[str, Any]) -> Target:
    """A `Target` from a pipeline object: validated with the agent's models, with the ConfigMap published
    from this spec (None, and `behind`, while the published one is of an earlier generation)."""
    metadata = body.get("metadata") or {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    uid = str(metadata.get("uid", ""))
    generation = int(metadata.get("generation") or 0)
    try:
        pipeline = validation.parse(body)
    except SpecError as exc:
        problems = tuple(str(p) for p in exc.problems)
        return Target(namespace, name, None, problems=problems, uid=uid, generation=generation)
    config_map = published_config_map(pipeline, body)
    published = published_generation(body)
    behind = config_map is not None and published is not None and published != generation
    return Target(
        namespace,
        name,
        pipeline,
        None if behind else config_map,
        uid=uid,
        generation=generation,
        behind=behind,
        copied_to=copied_to(body),
    )


def copied_to(body: dict[str, Any]) -> frozenset[str] | None:
    """The other namespaces the status says hold a copy of the published ConfigMap (None: not recorded)."""
    found = ((body.get("status") or {}).get("configRollout") or {}).get("copiedTo")
    return None if found is None else frozenset(str(n) for n in found)


def published_generation(body: dict[str, Any]) -> int | None:
    """The generation of the spec the published config was built from (None: not recorded)."""
    found = ((body.get("status") or {}).get("configRollout") or {}).get("generation")
    return None if found is None else int(found)


def published_config_map(pipeline: loader.OTLPPipeline, body: dict[str, Any]) -> str | None:
    """The ConfigMap the pipeline's status says is published (None: nothing is)."""
    status = body.get("status") or {}
    found = (status.get("configRollout") or {}).get("configMap")
    if found:
        return str(found)
    legacy = status.get("configHash")  # published by an operator that named ConfigMaps by the config hash
    return naming.config_map(pipeline, str(legacy)) if legacy else None
