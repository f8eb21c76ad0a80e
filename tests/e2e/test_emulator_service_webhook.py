"""Service-backed webhooks through the emulator, as the API server calls them: at a ready endpoint of the
Service (a pod matching its selector with an IP and Ready=True), at the target port (by name), with the
certificate checked against `<service>.<namespace>.svc`; without a ready endpoint the call fails and the
failurePolicy decides."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from aiohttp import web

from tests.support import network
from tests.support.kube_emulator import ApiError, KubeEmulator

SERVICE_NAME = "hooks.default.svc"


class Hooks:
    """A TLS webhook on 127.0.0.1 (port 0), certified for a Service name, denying every request."""

    def __init__(self, certified_for: str) -> None:
        self.ca = trustme.CA()
        self.certified_for = certified_for
        self.calls = 0

    async def _deny(self, request: web.Request) -> web.Response:
        self.calls += 1
        review = await request.json()
        response = {"uid": review["request"]["uid"], "allowed": False, "status": {"message": "reached"}}
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def __aenter__(self) -> Hooks:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(self.certified_for).configure_cert(context)
        app = web.Application()
        app.router.add_post("/check", self._deny)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.port = await network.serve(self.runner, context)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def cluster_with(kube: KubeEmulator, hooks: Hooks) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hooks", "namespace": "default"},
        "spec": {"selector": {"app": "hooks"}, "ports": [{"port": 443, "targetPort": "https"}]},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hooks-1", "namespace": "default", "labels": {"app": "hooks"}},
        "spec": {
            "containers": [
                {"name": "h", "image": "h", "ports": [{"name": "https", "containerPort": hooks.port}]}
            ]
        },
    }
    hook = {
        "name": "check.test.io",
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {"name": "hooks", "namespace": "default", "path": "/check"},
            "caBundle": base64.b64encode(hooks.ca.cert_pem.bytes()).decode(),
        },
    }
    await kube.create(service)
    await kube.create(pod)
    await kube.create(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "check"},
            "webhooks": [hook],
        }
    )


def ready(kube: KubeEmulator) -> None:
    status = {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
    kube.set_status("pods", "hooks-1", "default", status)


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async with Hooks(SERVICE_NAME) as server:
        yield server


async def test_without_a_ready_endpoint_the_call_fails_and_the_policy_refuses(
    kube: KubeEmulator, hooks: Hooks
) -> None:
    await cluster_with(kube, hooks)
    with pytest.raises(ApiError) as refused:
        await kube.create(configmap("a"))
    assert refused.value.code == 500
    assert 'no endpoints available for service "hooks"' in str(refused.value)
    assert hooks.calls == 0


async def test_a_ready_endpoint_is_called_at_its_target_port(kube: KubeEmulator, hooks: Hooks) -> None:
    await cluster_with(kube, hooks)
    ready(kube)
    with pytest.raises(ApiError) as denied:
        await kube.create(configmap("b"))
    assert 'admission webhook "check.test.io" denied the request: reached' in str(denied.value)
    assert hooks.calls == 1


async def test_the_certificate_must_name_the_service() -> None:
    async with KubeEmulator() as kube, Hooks("somewhere.else.svc") as wrong:
        await cluster_with(kube, wrong)
        ready(kube)
        with pytest.raises(ApiError) as refused:
            await kube.create(configmap("c"))
        assert refused.value.code == 500 and wrong.calls == 0
        assert "certificate" in str(refused.value).lower()
