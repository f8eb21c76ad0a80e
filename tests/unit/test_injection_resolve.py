"""Which pipeline a pod gets: the inject annotation on the pod or its namespace, and who may use what."""

from __future__ import annotations

from collections.abc import Iterable

from otlp_operator.injection import markers, resolve

from tests.support.injection_inputs import bare_pod, body, target

INJECT = markers.INJECT_ANNOTATION


def catalog(*targets: resolve.Target) -> resolve.Catalog:
    def lookup(namespace: str) -> Iterable[resolve.Target]:
        return [t for t in targets if t.namespace == namespace]

    return lookup


def pod(value: str | None = None, **labels: str):  # type: ignore[no-untyped-def]
    found = bare_pod()
    if value is not None:
        found["metadata"]["annotations"] = {INJECT: value}
    found["metadata"]["labels"] = labels
    return found


def decide(p, namespace_value=None, *targets, namespace="shop"):  # type: ignore[no-untyped-def]
    ns = None if namespace_value is None else {INJECT: namespace_value}
    return resolve.decide(p, namespace, ns, catalog(*targets))


def test_a_pod_naming_a_pipeline_of_its_namespace_gets_it() -> None:
    found = decide(pod("agent"), None, target("agent"), target("other"))
    assert found.target is not None and found.target.key == "shop/agent"
    assert found.reason == "Injected" and not found.warning


def test_a_pod_naming_namespace_and_pipeline_gets_that_one_when_allowed() -> None:
    shared = target("shared", "observability", injection={"allowed": {"namespaces": ["shop"]}})
    found = decide(pod("observability/shared"), None, shared)
    assert found.target is shared


def test_true_picks_the_only_sidecar_pipeline_of_the_namespace() -> None:
    gateway = target("gateway", mode="deployment")
    found = decide(pod("true"), None, gateway, target("agent"))
    assert found.target is not None and found.target.name == "agent"


def test_true_with_two_sidecar_pipelines_is_ambiguous_and_warns() -> None:
    found = decide(pod("true"), None, target("a"), target("b"))
    assert found.target is None and found.warning and found.reason == "AmbiguousPipeline"
    assert "a, b" in found.message


def test_true_without_a_sidecar_pipeline_warns() -> None:
    found = decide(pod("true"), None, target("gateway", mode="deployment"))
    assert (found.target, found.reason, found.warning) == (None, "NoSidecarPipeline", True)


def test_false_opts_out_silently_even_when_the_namespace_asks() -> None:
    found = decide(pod("false"), "agent", target("agent"))
    assert (found.target, found.reason, found.warning) == (None, "OptedOut", False)


def test_the_namespace_annotation_applies_to_pods_without_their_own() -> None:
    found = decide(pod(), "agent", target("agent"))
    assert found.target is not None and found.target.name == "agent"


def test_the_pods_annotation_wins_over_the_namespaces() -> None:
    found = decide(pod("special"), "agent", target("agent"), target("special"))
    assert found.target is not None and found.target.name == "special"


def test_a_pod_nobody_asked_for_is_left_alone_silently() -> None:
    found = decide(pod(), None, target("agent"))
    assert (found.target, found.reason, found.warning) == (None, "NotRequested", False)


def test_an_unknown_pipeline_warns_with_its_full_name() -> None:
    found = decide(pod("missing"), None, target("agent"))
    assert (found.target, found.reason, found.warning) == (None, "UnknownPipeline", True)
    assert "shop/missing" in found.message


def test_a_malformed_request_warns() -> None:
    found = decide(pod("a/b/c"), None, target("agent"))
    assert (found.reason, found.warning) == ("InvalidRequest", True)


def test_another_namespaces_pipeline_is_refused_unless_it_allows_the_pods_namespace() -> None:
    private = target("private", "observability")
    found = decide(pod("observability/private"), None, private)
    assert (found.target, found.reason, found.warning) == (None, "NotAllowed", True)
    assert found.about is private and "namespace shop" in found.message


def test_a_pod_without_the_selected_labels_is_refused() -> None:
    picky = target("agent", injection={"allowed": {"podSelector": {"tier": "frontend"}}})
    refused = decide(pod("agent", tier="backend"), None, picky)
    assert (refused.target, refused.reason) == (None, "NotAllowed")
    assert "tier=frontend" in refused.message
    allowed = decide(pod("agent", tier="frontend", app="web"), None, picky)
    assert allowed.target is picky


def test_an_invalid_pipeline_warns_with_its_problems() -> None:
    broken = resolve.target_of(body("agent", receivers={"otlp": {"grpc": {"port": 0}}}))
    found = decide(pod("agent"), None, broken)
    assert (found.target, found.reason, found.about) == (None, "InvalidPipeline", broken)
    assert "spec.receivers.otlp.grpc.port" in found.message


def test_a_target_carries_the_config_map_reconcile_published() -> None:
    # Not one computed here: a pipeline with a pipelineRef is published resolved, which only reconcile can do.
    published = body("agent", exporters=[{"name": "up", "pipelineRef": {"name": "gateway"}}])
    published["status"] = {"configHash": "f00dfeed12", "configRollout": {"configMap": "agent-config-abc"}}
    assert resolve.target_of(published).config_map == "agent-config-abc"


def test_a_config_published_before_config_maps_were_named_by_template_is_found_by_its_hash() -> None:
    published = body("agent")
    published["status"] = {"configHash": "f00dfeed12"}
    assert resolve.target_of(published).config_map == "agent-config-f00dfeed12"
    published["status"] = {}
    assert resolve.target_of(published).config_map is None


def test_a_sidecar_pipeline_with_nothing_published_injects_nothing_and_says_so() -> None:
    fresh = body("agent")
    del fresh["status"]
    unpublished = resolve.target_of(fresh)
    found = decide(pod("agent"), None, unpublished)
    assert (found.target, found.reason, found.warning) == (None, "NotPublished", True)


def test_a_pod_of_an_allowed_namespace_without_a_copy_of_the_config_yet_gets_nothing() -> None:
    shared = body("shared", "observability", injection={"allowed": {"namespaces": ["shop", "late"]}})
    shared["status"]["configRollout"]["copiedTo"] = ["shop"]  # "late" did not exist when it was copied
    target = resolve.target_of(shared)
    assert decide(pod("observability/shared"), None, target, namespace="shop").reason == "Injected"
    late = decide(pod("observability/shared"), None, target, namespace="late")
    assert (late.target, late.reason, late.warning) == (None, "NotPublished", True)
    assert "not copied into namespace late" in late.message
    shared["status"]["configRollout"]["copiedTo"] = []  # its own namespace needs no copy
    own = resolve.target_of(shared)
    assert decide(pod("shared"), None, own, namespace="observability").reason == "Injected"


def test_a_status_that_does_not_record_the_copies_is_trusted() -> None:
    shared = target("shared", "observability", injection={"allowed": {"namespaces": ["late"]}})
    assert decide(pod("observability/shared"), None, shared, namespace="late").reason == "Injected"
