"""Apply decisions: which patch brings a live child back to what the builders want (merge.patch_for)."""

from __future__ import annotations

import copy
import json
from typing import Any

from otlp_operator.reconcile import merge

UID = "1111-2222"
OWNER_REF = {
    "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
    "kind": "OTLPPipeline",
    "name": "gw",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def deployment(**spec: Any) -> dict[str, Any]:
    body = {
        "replicas": 2,
        "template": {
            "metadata": {"annotations": {"hash": "a"}},
            "spec": {
                "nodeSelector": {"pool": "telemetry"},
                "containers": [
                    {"name": "agent", "image": "img:1", "resources": {"limits": {"memory": "1Gi"}}}
                ],
            },
        },
    }
    body.update(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "gw-agent",
            "namespace": "obs",
            "labels": {"app": "gw"},
            "ownerReferences": [OWNER_REF],
        },
        "spec": body,
    }


def as_served(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns after creating `desired`: server fields and defaults added."""
    live = merge.with_last_applied(desired)
    live["metadata"].update(uid="x", resourceVersion="7", generation=1)
    live["spec"]["revisionHistoryLimit"] = 10
    container = live["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    live["status"] = {"readyReplicas": 1}
    return live


def test_a_child_just_created_is_in_sync_despite_server_defaults_and_status() -> None:
    desired = deployment()
    assert merge.patch_for(desired, as_served(desired)) == {}


def test_a_field_someone_edited_is_set_back_and_nothing_else_is_written() -> None:
    desired = deployment()
    live = as_served(desired)
    live["spec"]["replicas"] = 5
    assert merge.patch_for(desired, live) == {"spec": {"replicas": 2}}


def test_a_changed_container_replaces_the_whole_list() -> None:
    desired = deployment()
    live = as_served(desired)
    changed = copy.deepcopy(desired)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
    patch = merge.patch_for(changed, live)
    assert patch["spec"] == {
        "template": {"spec": {"containers": changed["spec"]["template"]["spec"]["containers"]}}
    }
    assert json.loads(patch["metadata"]["annotations"][merge.LAST_APPLIED]) == changed


def test_a_map_the_builders_stopped_setting_is_removed() -> None:
    desired = deployment()
    live = as_served(desired)
    without = copy.deepcopy(desired)
    del without["spec"]["template"]["spec"]["nodeSelector"]
    patch = merge.patch_for(without, live)
    assert patch["spec"] == {"template": {"spec": {"nodeSelector": None}}}


def test_replicas_are_not_removed_when_an_autoscaler_takes_over() -> None:
    desired = deployment()
    live = as_served(desired)
    autoscaled = copy.deepcopy(desired)
    del autoscaled["spec"]["replicas"]
    patch = merge.patch_for(autoscaled, live)
    assert "spec" not in patch  # only the last-applied annotation changes


def test_fields_set_by_others_are_left_alone() -> None:
    desired = deployment()
    live = as_served(desired)
    live["metadata"]["labels"]["team"] = "sre"
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    assert merge.patch_for(desired, live) == {}


def test_an_unowned_object_is_adopted_and_its_other_owner_references_kept() -> None:
    desired = deployment()
    live = as_served(desired)
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "anchor", "uid": "9"}
    live["metadata"]["ownerReferences"] = [other]
    patch = merge.patch_for(desired, live)
    assert patch["metadata"]["ownerReferences"] == [other, OWNER_REF]
    assert merge.foreign_controller(live, UID) is None and merge.controller_uid(live) is None


def test_an_object_controlled_by_someone_else_is_reported_as_foreign() -> None:
    live = as_served(deployment())
    live["metadata"]["ownerReferences"] = [{**OWNER_REF, "uid": "other", "kind": "Team", "name": "x"}]
    assert merge.foreign_controller(live, UID) == "Team/x"
    assert merge.foreign_controller(as_served(deployment()), UID) is None


def test_an_object_without_our_annotation_is_patched_to_carry_it() -> None:
    desired = deployment()
    live = as_served(desired)
    del live["metadata"]["annotations"][merge.LAST_APPLIED]
    patch = merge.patch_for(desired, live)
    assert set(patch) == {"metadata"} and merge.LAST_APPLIED in patch["metadata"]["annotations"]


def test_an_unreadable_last_applied_annotation_counts_as_none() -> None:
    live = {"metadata": {"annotations": {merge.LAST_APPLIED: "{not json"}}}
    assert merge.last_applied(live) == {}


def test_subset_compares_types_and_list_lengths() -> None:
    assert merge.subset({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2, "c": 3}], "d": 4})
    assert not merge.subset({"a": [1]}, {"a": [1, 2]})
    assert not merge.subset({"a": True}, {"a": 1})
    assert not merge.subset({"a": "1"}, {"a": 1})
