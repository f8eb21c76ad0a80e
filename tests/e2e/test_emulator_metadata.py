"""Object metadata of custom resources is the API server's: a CRD schema that declares `metadata` (as
generated schemas often do, `metadata: {type: object}`) never prunes or rejects its fields."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

from tests.support.kube_emulator import ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl


def with_metadata_schema(widget_crd: dict[str, Any]) -> dict[str, Any]:
    crd = copy.deepcopy(widget_crd)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] = {"type": "object"}
    return crd


def test_a_declared_metadata_schema_keeps_names_labels_and_annotations(
    kube_sync: ThreadedKubeEmulator, widget_crd: dict[str, Any], kubectl: Kubectl, tmp_path: pathlib.Path
) -> None:
    kube_sync.create(with_metadata_schema(widget_crd))
    manifest = tmp_path / "widget.yaml"
    manifest.write_text(
        "apiVersion: emulator.test.io/v1\nkind: Widget\n"
        "metadata: {name: one, namespace: default, labels: {team: sre}, annotations: {note: kept}}\n"
        "spec: {size: 2}\n"
    )
    kubectl("apply", "-f", str(manifest))  # kubectl asks for fieldValidation=Strict
    stored = kube_sync.get("widgets", "one", "default")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"team": "sre"}
    assert stored["metadata"]["annotations"]["note"] == "kept"
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]


def test_unknown_fields_elsewhere_are_still_pruned_and_reported(
    kube_sync: ThreadedKubeEmulator, widget_crd: dict[str, Any], kubectl: Kubectl, tmp_path: pathlib.Path
) -> None:
    kube_sync.create(with_metadata_schema(widget_crd))
    manifest = tmp_path / "widget.yaml"
    manifest.write_text(
        "apiVersion: emulator.test.io/v1\nkind: Widget\nmetadata: {name: two, namespace: default}\n"
        "spec: {size: 2, bogus: 1}\n"
    )
    refused = kubectl("apply", "-f", str(manifest), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.bogus"' in refused.stderr
