"""Fixtures for end-to-end tests: a Kubernetes API emulator on loopback, kubectl and API clients for it.

* ``kube``       — async tests: a started ``KubeEmulator`` (KUBECONFIG points at it for the test).
* ``kube_sync``  — sync tests (kubectl, the kubernetes client, kopf's KopfRunner): a ``ThreadedKubeEmulator``.
* ``kubectl``    — the real kubectl bound to ``kube_sync`` with a private discovery cache.
* ``core_api`` / ``custom_api`` — kubernetes python client APIs built from the emulator's kubeconfig.
* ``widget_crd`` — a small test CRD (group emulator.test.io) exercising schema, status and scale.

Running the operator's e2e tests against a real cluster: the emulator-specific helpers (``fail_next``,
``set_workload_ready``, direct object access) have no real-cluster equivalent, so tests that need a real
cluster should depend only on ``kubeconfig_path`` and API clients; set ``OTLP_E2E_KUBECONFIG=/path/to/config``
and use the ``cluster_kubeconfig`` fixture, which then yields that file instead of starting an emulator.
"""

from __future__ import annotations

import copy
import os
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kubernetes
import pytest

from tests.support.chart_install import Installed
from tests.support.kube_emulator import KubeEmulator, ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl
from tests.support.operator_harness import Cluster, cluster_for_tests

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.emulator.test.io"},
    "spec": {
        "group": "emulator.test.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                },
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "green", "blue"],
                                        "default": "red",
                                    },
                                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def point_kubeconfig_at(monkeypatch: pytest.MonkeyPatch, path: pathlib.Path) -> None:
    """Set KUBECONFIG for subprocesses and for the kubernetes client, which reads it once at import time
    (kopf.login_via_client and kubernetes.config.load_kube_config() use that import-time default)."""
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


@pytest.fixture
def widget_crd() -> dict[str, Any]:
    return copy.deepcopy(WIDGET_CRD)


@pytest.fixture
async def kube(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubeEmulator]:
    async with KubeEmulator() as emulator:
        point_kubeconfig_at(monkeypatch, emulator.kubeconfig_path)
        yield emulator


@pytest.fixture
def kube_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedKubeEmulator]:
    with ThreadedKubeEmulator() as emulator:
        point_kubeconfig_at(monkeypatch, emulator.kubeconfig_path)
        yield emulator


@pytest.fixture
def cluster_kubeconfig(request: pytest.FixtureRequest) -> pathlib.Path:
    """A real cluster's kubeconfig if OTLP_E2E_KUBECONFIG is set, else the (started) emulator's."""
    real = os.environ.get("OTLP_E2E_KUBECONFIG")
    if real:
        return pathlib.Path(real)
    emulator: ThreadedKubeEmulator = request.getfixturevalue("kube_sync")
    return emulator.kubeconfig_path


@pytest.fixture
def kubectl(kube_sync: ThreadedKubeEmulator, tmp_path: pathlib.Path) -> Kubectl:
    return Kubectl(kube_sync.kubeconfig_path, tmp_path / "kubectl-cache")


@pytest.fixture
def api_client(kube_sync: ThreadedKubeEmulator) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kube_sync.kubeconfig_path))
    yield client
    client.close()


@pytest.fixture
def core_api(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def custom_api(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[Cluster]:
    """The operator tests' cluster: the emulator with the CRD (or a real cluster, see operator_harness)."""
    with cluster_for_tests(monkeypatch, tmp_path) as found:
        yield found


@pytest.fixture
def chart_cluster(tmp_path: pathlib.Path) -> Iterator[Installed]:
    """The emulator with the test kubelet running its pods and Helm bound to it (the chart not installed)."""
    with ThreadedKubeEmulator() as kube:
        setup = Installed(kube, tmp_path)
        setup.start()
        try:
            yield setup
        finally:
            setup.stop()
            setup.helm.close()
