"""Shared inputs for the manifest tests: the examples, extra scenarios, a fixed image and owner.

No tests live here. Examples whose validation still says "not implemented yet" (features the operator
issue and later ones lift) are built from the models directly, which accept those fields; any other
validation problem in an example is a broken example and fails loudly.

A multi-document example gives one case per pipeline, `<file stem>--<namespace>--<name>`, with its
pipelineRefs resolved against the other pipelines of the same file (as the operator would in a cluster
where exactly that file was applied).
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from otlp_agent.api import loader, spec
from otlp_agent.api.problems import SpecError
from otlp_operator import manifests
from otlp_operator.reconcile import pipeline_refs

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "unit" / "golden"
IMAGE = "registry.test/otlp-agent:1.2.3"
OWNER = {
    "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
    "kind": spec.KIND,
    "metadata": {"name": "placeholder", "uid": "0b5c3e4e-1111-4222-8333-944455556666"},
}
EXPORTER = {"name": "backend", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}
PERSISTENT = {**EXPORTER, "queue": {"type": "persistent", "storageSize": "2Gi", "storageClassName": "fast"}}

# Mode and feature combinations beyond the examples; each is (name, spec).
SCENARIOS: dict[str, dict[str, Any]] = {
    "gateway-minimal": {"exporters": [EXPORTER]},
    "gateway-autoscaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 6}, "exporters": [EXPORTER]},
    "gateway-autoscaling-min1": {
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
        "exporters": [EXPORTER],
    },
    "gateway-persistent-single": {"replicas": 1, "exporters": [PERSISTENT]},
    "gateway-persistent-replicated": {"replicas": 3, "exporters": [PERSISTENT]},
    "statefulset-persistent": {
        "mode": "statefulset",
        "replicas": 3,
        "exporters": [{**PERSISTENT, "delivery": "durable"}, {**EXPORTER, "name": "second"}],
    },
    "statefulset-autoscaling-memory": {
        "mode": "statefulset",
        "autoscaling": {"minReplicas": 2, "maxReplicas": 8},
        "exporters": [EXPORTER],
    },
    "agent-load-balancing": {
        "mode": "daemonset",
        "exporters": [
            {
                "name": "gateways",
                "endpoint": "gateway-otlp-headless.observability.svc:4317",
                "tls": {"insecure": True},
                "loadBalancing": {"routingKey": "traceID", "resourceAttributes": ["service.name"]},
            }
        ],
    },
    "gateway-grpc-only": {
        "receivers": {"otlp": {"http": {"enabled": False}, "grpc": {"port": 14317}}},
        "telemetry": {"port": 9090},
        "exporters": [EXPORTER],
    },
    "gateway-http-only-tuned": {
        "receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"port": 8080}}},
        "image": "mirror.test/agent:pinned",
        "env": [{"name": "EXTRA", "value": "1"}, {"name": "OTLP_AGENT_NODE_NAME", "value": "fixed"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "priorityClassName": "system-cluster-critical",
        "lifecycle": {"shutdownGracePeriod": "2.5s"},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "exporters": [EXPORTER],
    },
    "node-agent-persistent": {
        "mode": "daemonset",
        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
        "exporters": [PERSISTENT],
    },
    "sidecar-minimal": {"mode": "sidecar", "exporters": [EXPORTER]},
}


def pipeline_from_example(path: pathlib.Path) -> loader.OTLPPipeline:
    """An example as a Pipeline; "not implemented yet" refusals are bypassed (see the module docstring)."""
    try:
        return loader.load_file(path)
    except SpecError as exc:
        others = [p for p in exc.problems if "not implemented yet" not in p.message]
        assert not others, f"{path.name} is invalid: {others}"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    metadata = document["metadata"]
    model = spec.OTLPPipelineSpec.model_validate(document["spec"])
    return loader.OTLPPipeline(metadata["name"], metadata.get("namespace", "default"), model)


def pipelines_from_file(path: pathlib.Path) -> dict[str, loader.OTLPPipeline]:
    """The cases of one example file: its stem for one pipeline, one case per pipeline for several."""
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    if len(documents) == 1:
        return {path.stem: pipeline_from_example(path)}
    found = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in documents}
    cases = {}
    for (namespace, name), document in found.items():
        pipeline = loader.load_document(document, source=f"{path.name}: {namespace}/{name}")
        targets = {key: found.get(key) for key in pipeline_refs.targets(pipeline)}
        resolution = pipeline_refs.resolve(pipeline, targets)
        assert not resolution.failures, resolution.failures
        cases[f"{path.stem}--{namespace}--{name}"] = resolution.pipeline
    return cases


def scenario(name: str, namespace: str = "observability") -> loader.OTLPPipeline:
    """A scenario as a Pipeline (built from the models, so not-yet-implemented fields are allowed)."""
    return loader.OTLPPipeline(name, namespace, spec.OTLPPipelineSpec.model_validate(SCENARIOS[name]))


def owner_for(pipeline: loader.OTLPPipeline) -> dict[str, Any]:
    """The fixed owner, renamed after `pipeline`."""
    return {**OWNER, "metadata": {**OWNER["metadata"], "name": pipeline.name}}


def build(pipeline: loader.OTLPPipeline) -> list[dict[str, Any]]:
    """Every child of `pipeline` with the fixed image and owner."""
    return manifests.build_all(pipeline, agent_image=IMAGE, owner=owner_for(pipeline))


def all_cases() -> dict[str, loader.OTLPPipeline]:
    """Every example (by file stem) and every scenario (prefixed `scenario-`)."""
    cases = {name: pipeline for path in EXAMPLES for name, pipeline in pipelines_from_file(path).items()}
    cases.update({f"scenario-{name}": scenario(name) for name in SCENARIOS})
    return cases


HEADLESS = "Service/headless"


def key(obj: dict[str, Any]) -> str:
    """An object's kind, and for a gateway's headless Service `Service/headless`."""
    if obj["kind"] == "Service" and obj["spec"].get("clusterIP") == "None":
        return HEADLESS
    return str(obj["kind"])


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects keyed by kind (each kind appears at most once among a pipeline's children, the headless
    Service apart: `Service/headless`)."""
    kinds = [key(o) for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {key(o): o for o in objects}
