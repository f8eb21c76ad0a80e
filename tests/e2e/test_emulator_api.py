"""The emulator's core API semantics, seen through the official kubernetes python client."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.support.kube_emulator import ThreadedKubeEmulator

GROUP, VERSION, PLURAL = "emulator.test.io", "v1", "widgets"
JSON_PATCH = "application/json-patch+json"


def widget(name: str, size: int = 3, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"size": size},
    }


@pytest.fixture
def widgets(kube_sync: ThreadedKubeEmulator, widget_crd: dict[str, Any], custom_api: Any) -> Any:
    kube_sync.create(widget_crd)
    return custom_api


def create_widget(api: Any, body: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    result: dict[str, Any] = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return result


def error_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_created_objects_get_uid_resource_version_generation_and_creation_timestamp(widgets: Any) -> None:
    created = create_widget(widgets, widget("one"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36
    assert int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")


def test_resource_versions_are_global_and_monotonic_across_kinds(widgets: Any, core_api: Any) -> None:
    first = create_widget(widgets, widget("one"))
    cm = core_api.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    second = create_widget(widgets, widget("two"))
    versions = [
        int(first["metadata"]["resourceVersion"]),
        int(cm.metadata.resource_version),
        int(second["metadata"]["resourceVersion"]),
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_generation_is_bumped_by_spec_changes_only(widgets: Any) -> None:
    create_widget(widgets, widget("one"))
    labelled = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "one", {"status": {"phase": "Ready"}}
    )
    assert with_status["metadata"]["generation"] == 1
    resized = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 4}}
    )
    assert resized["metadata"]["generation"] == 2


def test_a_no_op_patch_keeps_the_resource_version(widgets: Any) -> None:
    created = create_widget(widgets, widget("one"))
    same = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 3}}
    )
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_put_with_a_stale_resource_version_is_a_409_conflict(widgets: Any) -> None:
    stale = create_widget(widgets, widget("one"))
    widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 5}})
    stale["spec"]["size"] = 6
    with pytest.raises(ApiException) as caught:
        widgets.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one", stale)
    assert caught.value.status == 409
    assert error_body(caught.value)["reason"] == "Conflict"
    current = widgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one")
    assert current["spec"]["size"] == 5


def test_put_with_the_current_resource_version_replaces_the_object(widgets: Any) -> None:
    current = create_widget(widgets, widget("one"))
    current["spec"] = {"size": 7}
    replaced = widgets.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one", current)
    assert replaced["spec"]["size"] == 7 and replaced["spec"]["color"] == "red"
    assert replaced["metadata"]["generation"] == 2


def test_creating_a_duplicate_is_409_already_exists(widgets: Any) -> None:
    create_widget(widgets, widget("one"))
    with pytest.raises(ApiException) as caught:
        create_widget(widgets, widget("one"))
    assert caught.value.status == 409
    assert error_body(caught.value)["reason"] == "AlreadyExists"


def test_namespaced_objects_need_an_existing_namespace(widgets: Any) -> None:
    with pytest.raises(ApiException) as caught:
        create_widget(widgets, widget("one"), namespace="nowhere")
    assert caught.value.status == 404
    assert error_body(caught.value)["message"] == 'namespaces "nowhere" not found'


def test_a_missing_object_is_404_not_found_status(widgets: Any) -> None:
    with pytest.raises(ApiException) as caught:
        widgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "ghost")
    body = error_body(caught.value)
    assert (caught.value.status, body["kind"], body["reason"]) == (404, "Status", "NotFound")


def test_a_failed_json_patch_test_is_422_and_changes_nothing(widgets: Any) -> None:
    created = create_widget(widgets, widget("one"))
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/spec/size", "value": 9},
    ]
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "one", ops, _content_type=JSON_PATCH
        )
    assert caught.value.status == 422
    ops[0]["value"] = created["metadata"]["resourceVersion"]
    patched = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", ops, _content_type=JSON_PATCH
    )
    assert patched["spec"]["size"] == 9


def test_status_changes_only_through_the_status_subresource(widgets: Any) -> None:
    body = widget("one")
    body["status"] = {"phase": "Faked"}
    created = create_widget(widgets, body)
    assert "status" not in created
    ignored = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", {"status": {"phase": "Main"}}
    )
    assert "status" not in ignored
    updated = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "one", {"status": {"phase": "Ready"}, "spec": {"size": 9}}
    )
    assert updated["status"] == {"phase": "Ready"} and updated["spec"]["size"] == 3


def test_finalizers_hold_deletion_until_they_are_removed(
    widgets: Any, kube_sync: ThreadedKubeEmulator
) -> None:
    body = widget("one")
    body["metadata"]["finalizers"] = ["test.io/hold"]
    create_widget(widgets, body)
    widgets.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one")
    held = widgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["generation"] == 2
    widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "one", {"metadata": {"finalizers": None}}
    )
    assert kube_sync.get("widgets", "one", "default") is None


def test_label_selectors_support_equality_sets_and_existence(widgets: Any) -> None:
    create_widget(widgets, widget("a", labels={"tier": "web", "env": "prod"}))
    create_widget(widgets, widget("b", labels={"tier": "db", "env": "dev"}))
    create_widget(widgets, widget("c", labels={"tier": "cache"}))

    def names(selector: str) -> list[str]:
        found = widgets.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, label_selector=selector
        )
        return [item["metadata"]["name"] for item in found["items"]]

    assert names("tier=web") == ["a"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web,db)") == ["a", "b"]
    assert names("tier notin (web,db)") == ["c"]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c"]
    assert names("env,tier=db") == ["b"]


def test_field_selectors_match_name_and_namespace_and_reject_unknown_fields(
    widgets: Any, core_api: Any
) -> None:
    core_api.create_namespace({"metadata": {"name": "other"}})
    create_widget(widgets, widget("a"))
    create_widget(widgets, widget("a"), namespace="other")
    create_widget(widgets, widget("b"), namespace="other")
    found = widgets.list_cluster_custom_object(GROUP, VERSION, PLURAL, field_selector="metadata.name=a")
    assert sorted(i["metadata"]["namespace"] for i in found["items"]) == ["default", "other"]
    found = widgets.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.namespace!=other"
    )
    assert [i["metadata"]["name"] for i in found["items"]] == ["a"]
    with pytest.raises(ApiException) as caught:
        widgets.list_cluster_custom_object(GROUP, VERSION, PLURAL, field_selector="spec.size=3")
    assert caught.value.status == 400


def test_lists_paginate_with_limit_and_continue(widgets: Any) -> None:
    for name in "abcde":
        create_widget(widgets, widget(name))
    seen, token = [], None
    while True:
        page = widgets.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, limit=2, _continue=token
        )
        seen += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert seen == list("abcde")


def test_strategic_merge_patch_merges_containers_by_name(api_client: Any) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    containers = [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}]
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
            },
        },
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "env": [{"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "side:1"},
                    ]
                }
            }
        }
    }
    patched = apps.patch_namespaced_deployment(
        "web", "default", patch, _content_type="application/strategic-merge-patch+json"
    )
    got = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(got) == {"app", "sidecar"}
    assert got["app"].image == "app:1"
    assert [(e.name, e.value) for e in got["app"].env] == [("A", "1"), ("B", "2")]


def test_workload_status_helper_reports_ready_replicas(
    api_client: Any, kube_sync: ThreadedKubeEmulator
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}]},
                },
            },
        },
    )
    assert apps.read_namespaced_deployment_status("web", "default").status.ready_replicas is None
    kube_sync.set_workload_ready("deployments", "web", "default", ready=2)
    status = apps.read_namespaced_deployment_status("web", "default").status
    assert (status.replicas, status.ready_replicas, status.observed_generation) == (3, 2, 1)


def test_injected_faults_fail_the_next_matching_request_once(
    widgets: Any, kube_sync: ThreadedKubeEmulator
) -> None:
    create_widget(widgets, widget("one"))
    kube_sync.fail_next("PATCH", r"/widgets/one$", status=503)
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 4}}
        )
    assert caught.value.status == 503
    assert kube_sync.get("widgets", "one", "default")["spec"]["size"] == 3
    widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 4}})
    assert kube_sync.get("widgets", "one", "default")["spec"]["size"] == 4


def test_core_and_events_k8s_io_events_are_stored_and_listable(api_client: Any, core_api: Any) -> None:
    involved = {"kind": "Widget", "name": "one", "namespace": "default"}
    core_api.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "involvedObject": involved,
            "reason": "Created",
            "message": "hello",
            "type": "Normal",
        },
    )
    events_api = kubernetes.client.EventsV1Api(api_client)
    events_api.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e2"},
            "regarding": involved,
            "reason": "Synced",
            "action": "Sync",
            "type": "Normal",
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "t",
            "reportingInstance": "t",
        },
    )
    core = core_api.list_namespaced_event("default", field_selector="involvedObject.name=one")
    assert [(e.reason, e.message) for e in core.items] == [("Created", "hello")]
    assert [e.reason for e in events_api.list_namespaced_event("default").items] == ["Synced"]
