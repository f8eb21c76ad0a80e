"""The real kubectl against the emulator: apply, get, wait, scale, delete, selectors, validation."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.support.kube_emulator import ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl


def widget(name: str, size: int = 3, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "emulator.test.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}, **meta},
        "spec": {"size": size},
    }


@pytest.fixture
def with_crd(kubectl: Kubectl, widget_crd: dict[str, Any]) -> Kubectl:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(widget_crd))
    kubectl("wait", "--for=condition=Established", "crd/widgets.emulator.test.io", "--timeout=10s")
    return kubectl


def apply(kubectl: Kubectl, *objects: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects), check=check)


def background(kubectl: Kubectl, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [kubectl.binary, *args], env=kubectl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_kubectl_applies_a_custom_resource_and_reads_it_back_with_defaults(with_crd: Kubectl) -> None:
    assert "widget.emulator.test.io/one created" in apply(with_crd, widget("one")).stdout
    got = with_crd.json("get", "widget", "one")
    assert got["spec"] == {"size": 3, "color": "red", "replicas": 1}
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    table = with_crd("get", "wd").stdout.split("\n")
    assert table[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert table[1].split()[:3] == ["one", "3", "<none>"]


def test_kubectl_get_filters_with_label_selectors(with_crd: Kubectl) -> None:
    apply(with_crd, widget("a", labels={"tier": "web"}), widget("b", labels={"tier": "db"}), widget("c"))
    names = with_crd("get", "widgets", "-l", "tier in (web,db),tier!=db", "-o", "name").stdout.split()
    assert names == ["widget.emulator.test.io/a"]
    listed = with_crd.json("get", "widgets", "-l", "!tier")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["c"]


def test_kubectl_reapply_updates_a_custom_resource_with_a_merge_patch(with_crd: Kubectl) -> None:
    apply(with_crd, widget("one", size=3))
    assert "configured" in apply(with_crd, widget("one", size=5)).stdout
    got = with_crd.json("get", "widget", "one")
    assert (got["spec"]["size"], got["metadata"]["generation"]) == (5, 2)


def test_kubectl_rejects_unknown_and_invalid_fields(with_crd: Kubectl) -> None:
    typo = widget("one")
    typo["spec"]["colour"] = "red"
    done = apply(with_crd, typo, check=False)
    assert done.returncode == 1 and 'unknown field "spec.colour"' in done.stderr
    done = apply(with_crd, widget("two", size=50), check=False)
    assert done.returncode == 1
    assert "spec.size: Invalid value: 50: spec.size in body should be less than or equal to 10" in done.stderr


def test_kubectl_wait_returns_when_a_condition_is_set(
    with_crd: Kubectl, kube_sync: ThreadedKubeEmulator
) -> None:
    apply(with_crd, widget("one"))
    waiting = background(with_crd, "wait", "--for=condition=Ready", "widget/one", "--timeout=20s")
    by_path = background(
        with_crd, "wait", "--for=jsonpath={.status.phase}=Running", "widget/one", "--timeout=20s"
    )
    kube_sync.set_status(
        "widgets", "one", "default", {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    )
    for process in (waiting, by_path):
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "widget.emulator.test.io/one condition met" in out


def test_kubectl_scale_uses_the_scale_subresource(with_crd: Kubectl) -> None:
    apply(with_crd, widget("one"))
    with_crd("scale", "widget/one", "--replicas=4")
    assert with_crd("get", "widget", "one", "-o", "jsonpath={.spec.replicas}").stdout == "4"


def test_kubectl_delete_waits_for_finalizers(with_crd: Kubectl, kube_sync: ThreadedKubeEmulator) -> None:
    apply(with_crd, widget("one", finalizers=["test.io/hold"]))
    deleting = background(with_crd, "delete", "widget", "one", "--timeout=20s")
    kube_sync.wait_for(
        lambda: (
            (kube_sync.emulator.get("widgets", "one", "default") or {})
            .get("metadata", {})
            .get("deletionTimestamp")
        )
    )
    with_crd("patch", "widget", "one", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    out, err = deleting.communicate(timeout=20)
    assert deleting.returncode == 0, err
    assert 'widget.emulator.test.io "one" deleted' in out
    assert with_crd("get", "widget", "one", check=False).returncode == 1


def test_kubectl_apply_merges_deployment_containers_three_ways(kubectl: Kubectl) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        }
                    ]
                },
            },
        },
    }
    apply(kubectl, deployment)
    # Someone else adds a container: a three-way merge must keep it when we re-apply our own change.
    kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"injected","image":"side:1"}]}}}}',
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "3"}]
    apply(kubectl, deployment)
    got = kubectl.json("get", "deployment", "web")
    containers = {c["name"]: c for c in got["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"app", "injected"}
    assert containers["app"]["env"] == [{"name": "A", "value": "3"}]
    assert got["spec"]["replicas"] == 1 and got["metadata"]["generation"] == 3


def test_kubectl_prints_server_warnings_for_pruned_fields_with_validate_warn(with_crd: Kubectl) -> None:
    typo = widget("one")
    typo["spec"].update(colour="red", shade="dark")
    done = with_crd("apply", "--validate=warn", "-f", "-", input=yaml.safe_dump(typo))
    assert 'Warning: unknown field "spec.colour"' in done.stderr
    assert 'Warning: unknown field "spec.shade"' in done.stderr
    assert with_crd.json("get", "widget", "one")["spec"] == {"size": 3, "color": "red", "replicas": 1}
