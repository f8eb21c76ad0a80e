"""Admission webhooks through the emulator: AdmissionReview v1 over TLS (caBundle-verified), JSONPatch
mutation, denials, failurePolicy, timeoutSeconds and selectors."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.support import network
from tests.support.kube_emulator import ApiError, KubeEmulator

Answer = Callable[[dict[str, Any]], dict[str, Any]]


class WebhookServer:
    """A TLS webhook on 127.0.0.1 whose answers a test scripts; it records every review it receives."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self.reviews: list[dict[str, Any]] = []
        self.answer: Answer = lambda request: {"allowed": True}
        self.hold: Callable[[dict[str, Any]], bool] = lambda request: False  # reviews kept waiting on `hang`
        self.hang = asyncio.Event()
        self.reviewed = asyncio.Event()  # set once a review has arrived

    async def _handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.reviews.append(review)
        self.reviewed.set()
        if request.path == "/hang" or self.hold(review["request"]):
            await self.hang.wait()
        response = {"uid": review["request"]["uid"], **self.answer(review["request"])}
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def __aenter__(self) -> WebhookServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.url = f"https://127.0.0.1:{await network.serve(self.runner, context)}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hang.set()
        await self.runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookServer]:
    async with WebhookServer(trustme.CA()) as server:
        yield server


def configuration(kind: str, url: str, ca: trustme.CA, **hook: Any) -> dict[str, Any]:
    rules = [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
        }
    ]
    entry = {
        "name": f"{kind.lower()}.test.io",
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url, "caBundle": base64.b64encode(ca.cert_pem.bytes()).decode()},
        **hook,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": f"{kind}WebhookConfiguration",
        "metadata": {"name": kind.lower()},
        "webhooks": [entry],
    }


def configmap(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "labels": labels}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}


async def test_a_mutating_webhook_patch_is_applied_to_the_stored_object(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    patch = [{"op": "add", "path": "/data/injected", "value": "yes"}]
    webhook.answer = lambda request: {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    await kube.create(configuration("Mutating", webhook.url, webhook.ca))
    created = await kube.create(configmap("cm"))
    assert created["data"] == {"injected": "yes"}
    (review,) = webhook.reviews
    request = review["request"]
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    assert (request["operation"], request["namespace"], request["name"]) == ("CREATE", "default", "cm")
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["object"]["metadata"]["name"] == "cm" and request["oldObject"] is None


async def test_a_validating_webhook_denial_reaches_the_client_with_its_message_and_code(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    webhook.answer = lambda request: {"allowed": False, "status": {"code": 403, "message": "not on my watch"}}
    await kube.create(configuration("Validating", webhook.url, webhook.ca))
    async with (
        aiohttp.ClientSession(base_url=kube.url) as http,
        http.post("/api/v1/namespaces/default/configmaps", json=configmap("cm")) as rsp,
    ):
        status, body = rsp.status, await rsp.json()
    assert status == 403
    assert body["message"] == 'admission webhook "validating.test.io" denied the request: not on my watch'
    assert kube.get("configmaps", "cm", "default") is None


async def test_a_denial_without_a_code_is_400_bad_request(kube: KubeEmulator, webhook: WebhookServer) -> None:
    webhook.answer = lambda request: {"allowed": False}
    await kube.create(configuration("Validating", webhook.url, webhook.ca))
    with pytest.raises(ApiError) as caught:
        await kube.create(configmap("cm"))
    assert caught.value.code == 400
    assert (
        caught.value.message
        == 'admission webhook "validating.test.io" denied the request without explanation'
    )


async def test_updates_are_reviewed_with_the_old_object(kube: KubeEmulator, webhook: WebhookServer) -> None:
    await kube.create(configmap("cm"))
    await kube.create(configuration("Validating", webhook.url, webhook.ca))
    async with (
        aiohttp.ClientSession(base_url=kube.url) as http,
        http.patch(
            "/api/v1/namespaces/default/configmaps/cm",
            json={"data": {"a": "b"}},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as rsp,
    ):
        assert rsp.status == 200
    (review,) = webhook.reviews
    assert review["request"]["operation"] == "UPDATE"
    assert review["request"]["oldObject"]["data"] == {} and review["request"]["object"]["data"] == {"a": "b"}


async def test_a_write_that_lands_while_a_patch_waits_on_admission_is_kept(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    """As the API server's GuaranteedUpdate: the waiting patch is applied again to the object as it now is
    (it used to be stored on the object as it was, undoing the other write)."""
    await kube.create(configmap("cm"))
    webhook.hold = lambda request: (request["object"].get("data") or {}).get("first") == "1"
    await kube.create(configuration("Validating", webhook.url, webhook.ca))

    async def merge(http: aiohttp.ClientSession, data: dict[str, str]) -> int:
        async with http.patch(
            "/api/v1/namespaces/default/configmaps/cm",
            json={"data": data},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as rsp:
            return rsp.status

    async with aiohttp.ClientSession(base_url=kube.url) as http:
        first = asyncio.ensure_future(merge(http, {"first": "1"}))
        await asyncio.wait_for(webhook.reviewed.wait(), 30)  # the first patch is waiting on its review
        assert await merge(http, {"second": "2"}) == 200
        webhook.hang.set()
        assert await asyncio.wait_for(first, 30) == 200
    stored = kube.get("configmaps", "cm", "default")
    assert stored is not None and stored["data"] == {"first": "1", "second": "2"}


async def test_an_unreachable_webhook_fails_the_request_by_default(kube: KubeEmulator) -> None:
    await kube.create(configuration("Validating", "https://127.0.0.1:9/", trustme.CA()))
    with pytest.raises(ApiError) as caught:
        await kube.create(configmap("closed"))
    assert caught.value.code == 500 and 'failed calling webhook "validating.test.io"' in caught.value.message
    assert kube.get("configmaps", "closed", "default") is None


async def test_failure_policy_ignore_lets_the_request_through(kube: KubeEmulator) -> None:
    await kube.create(
        configuration("Validating", "https://127.0.0.1:9/", trustme.CA(), failurePolicy="Ignore")
    )
    created = await kube.create(configmap("open"))
    assert created["metadata"]["name"] == "open"


async def test_a_webhook_served_with_an_untrusted_certificate_is_refused(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    await kube.create(configuration("Validating", webhook.url, trustme.CA()))  # a CA that did not sign it
    with pytest.raises(ApiError) as caught:
        await kube.create(configmap("cm"))
    assert caught.value.code == 500 and "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert webhook.reviews == []


async def test_a_slow_webhook_times_out_after_timeout_seconds(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    await kube.create(configuration("Validating", webhook.url + "/hang", webhook.ca, timeoutSeconds=1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ApiError) as caught:
        await kube.create(configmap("cm"))
    assert 0.9 <= loop.time() - started < 5
    assert caught.value.code == 500 and "context deadline exceeded" in caught.value.message


async def test_object_and_namespace_selectors_limit_which_requests_are_reviewed(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "watched", "labels": {"review": "yes"}},
        }
    )
    config = configuration(
        "Validating",
        webhook.url,
        webhook.ca,
        namespaceSelector={"matchLabels": {"review": "yes"}},
        objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
    )
    await kube.create(config)
    await kube.create(configmap("in-default"))
    await kube.create(configmap("skipped", "watched", skip="1"))
    await kube.create(configmap("reviewed", "watched"))
    assert [r["request"]["name"] for r in webhook.reviews] == ["reviewed"]


async def test_webhook_warnings_reach_the_client_as_warning_headers_and_the_object_is_stored(
    kube: KubeEmulator, webhook: WebhookServer
) -> None:
    # As the API server does: each of response.warnings becomes one `Warning: 299 - "<text>"` header, the
    # text quoted (backslash and double quote escaped); an allowed request is stored all the same.
    warnings = ["the limit is low", 'a "quoted" path\\name']
    webhook.answer = lambda request: {"allowed": True, "warnings": warnings}
    await kube.create(configuration("Validating", webhook.url, webhook.ca))
    async with (
        aiohttp.ClientSession(base_url=kube.url) as http,
        http.post("/api/v1/namespaces/default/configmaps", json=configmap("cm")) as rsp,
    ):
        status, headers = rsp.status, rsp.headers.getall("Warning", [])
    assert status == 201
    assert headers == ['299 - "the limit is low"', '299 - "a \\"quoted\\" path\\\\name"']
    assert kube.get("configmaps", "cm", "default") is not None
