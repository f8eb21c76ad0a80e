"""A real kopf operator (kopf.testing.KopfRunner) against the emulator: CRD discovery, handlers for
create/update/delete with status patches and finalizers, retries after an injected API error, and a kopf
validating webhook (kopf.WebhookServer, kopf-managed configuration) rejecting objects via admission."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import kopf
import kopf.testing
import kubernetes
import pytest
import trustme
from kubernetes.client import ApiException

from tests.support.kube_emulator import ThreadedKubeEmulator

GROUP, VERSION, PLURAL = "emulator.test.io", "v1", "widgets"


def settings_for_tests() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10  # watches reconnect quickly instead of hanging on shutdown
    settings.watching.client_timeout = 15
    settings.networking.request_timeout = 10
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = "emulator.test.io/finalizer"
    return settings


def new_registry() -> kopf.OperatorRegistry:
    """A registry with kopf's own kubeconfig login (KUBECONFIG points at the emulator in these tests)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    return registry


def build_operator(kubeconfig: str) -> kopf.OperatorRegistry:
    """Handlers that keep a ConfigMap per Widget and report progress in the Widget's status."""
    registry = new_registry()
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=0.1)
    def created(
        name: str, namespace: str, spec: dict[str, Any], body: kopf.Body, patch: kopf.Patch, **_: Any
    ) -> None:
        config = {"metadata": {"name": f"{name}-config"}, "data": {"size": str(spec["size"])}}
        kopf.adopt(config, owner=body)
        api.create_namespaced_config_map(namespace, config)
        patch.status["phase"] = "Created"
        kopf.info(body, reason="ConfigCreated", message=f"{name}-config created")

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec.size", registry=registry, backoff=0.1)
    def resized(name: str, namespace: str, new: int, patch: kopf.Patch, **_: Any) -> None:
        api.patch_namespaced_config_map(f"{name}-config", namespace, {"data": {"size": str(new)}})
        patch.status["observedSize"] = new

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(name: str, namespace: str, **_: Any) -> None:
        api.create_namespaced_config_map(namespace, {"metadata": {"name": f"{name}-goodbye"}})

    return registry


def widget(name: str, size: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


@pytest.fixture
def widgets(kube_sync: ThreadedKubeEmulator, widget_crd: dict[str, Any], custom_api: Any) -> Any:
    kube_sync.create(widget_crd)
    return custom_api


@contextlib.contextmanager
def running(
    registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings
) -> Iterator[kopf.testing.KopfRunner]:
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with kopf.testing.KopfRunner(args, registry=registry, settings=settings, timeout=60) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None


def status_of(kube: ThreadedKubeEmulator, name: str) -> dict[str, Any]:
    return (kube.emulator.get("widgets", name, "default") or {}).get("status") or {}


def test_a_kopf_operator_reacts_to_create_update_and_delete(
    kube_sync: ThreadedKubeEmulator, widgets: Any
) -> None:
    with running(build_operator(str(kube_sync.kubeconfig_path)), settings_for_tests()):
        widgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("one", 2))
        kube_sync.wait_for(lambda: status_of(kube_sync, "one").get("phase") == "Created")
        config = kube_sync.get("configmaps", "one-config", "default")
        assert config is not None and config["data"] == {"size": "2"}
        assert config["metadata"]["ownerReferences"][0]["name"] == "one"
        finalizers = kube_sync.get("widgets", "one", "default")["metadata"]["finalizers"]  # type: ignore[index]
        assert finalizers == ["emulator.test.io/finalizer"]

        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "one", {"spec": {"size": 5}}
        )
        kube_sync.wait_for(lambda: status_of(kube_sync, "one").get("observedSize") == 5)
        assert kube_sync.get("configmaps", "one-config", "default")["data"] == {"size": "5"}  # type: ignore[index]

        widgets.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "one")
        kube_sync.wait_for(lambda: kube_sync.emulator.get("widgets", "one", "default") is None)
        assert kube_sync.get("configmaps", "one-goodbye", "default") is not None
        kube_sync.wait_for(lambda: kube_sync.emulator.get("configmaps", "one-config", "default") is None)
        kube_sync.wait_for(
            lambda: any(e["reason"] == "ConfigCreated" for e in kube_sync.emulator.list("events"))
        )


def test_kopf_retries_a_handler_after_an_injected_api_error(
    kube_sync: ThreadedKubeEmulator, widgets: Any
) -> None:
    kube_sync.fail_next("POST", r"/namespaces/default/configmaps$", status=500, message="etcd is sad")
    with running(build_operator(str(kube_sync.kubeconfig_path)), settings_for_tests()) as runner:
        widgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("one", 2))
        kube_sync.wait_for(lambda: status_of(kube_sync, "one").get("phase") == "Created")
    assert kube_sync.get("configmaps", "one-config", "default") is not None
    failed = [r for r in kube_sync.requests if r.method == "POST" and r.path.endswith("/configmaps")]
    assert [r.status for r in failed] == [500, 201]
    assert "etcd is sad" in runner.output


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_kopf_validating_webhook_rejects_objects_through_the_emulator(
    kube_sync: ThreadedKubeEmulator, widgets: Any, tmp_path: Any
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = settings_for_tests()
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1",
        host="127.0.0.1",
        port=free_loopback_port(),
        certfile=str(tmp_path / "cert.pem"),
        pkeyfile=str(tmp_path / "key.pem"),
        cafile=str(tmp_path / "ca.pem"),
    )
    settings.admission.managed = "widgets.emulator.test.io"
    registry = new_registry()

    @kopf.on.validate(GROUP, VERSION, PLURAL, id="size-check", registry=registry)
    def check(spec: dict[str, Any], **_: Any) -> None:
        if spec.get("size") == 7:
            raise kopf.AdmissionError("seven is unlucky", code=403)

    def configured() -> bool:
        config = kube_sync.emulator.get("validatingwebhookconfigurations", "widgets.emulator.test.io") or {}
        return any("url" in hook.get("clientConfig", {}) for hook in config.get("webhooks") or [])

    with running(registry, settings):
        kube_sync.wait_for(configured)
        with pytest.raises(ApiException) as caught:
            widgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("bad", 7))
        widgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("good", 3))
    assert caught.value.status == 403
    assert "denied the request: seven is unlucky" in caught.value.body
    assert kube_sync.get("widgets", "bad", "default") is None
    assert kube_sync.get("widgets", "good", "default") is not None
