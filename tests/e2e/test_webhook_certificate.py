"""The operator's webhook certificate in a cluster (the emulator): two replicas starting at once agree on
one certificate through the Secret, write the files the server serves, and put the CA into the webhook
configurations; a later round changes nothing; a configuration reset by a re-render gets it back."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from typing import Any

from otlp_operator.reconcile import certificates, kube, webhook_tls

from tests.support.kube_emulator import KubeEmulator

NAMESPACE = "otlp-system"
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def configuration(kind: str) -> dict[str, Any]:
    webhook = {
        "name": "validate.example.io",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"url": "https://127.0.0.1:9443/validate"},
        "rules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
        ],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "hooks"},
        "webhooks": [webhook],
    }


def tls_for(replica: pathlib.Path) -> webhook_tls.Tls:
    return webhook_tls.Tls(
        namespace=NAMESPACE,
        secret="hooks-tls",
        names=("hooks.otlp-system.svc", "127.0.0.1"),
        configurations=(("ValidatingWebhookConfiguration", "hooks"),),
        certfile=str(replica / "tls.crt"),
        keyfile=str(replica / "tls.key"),
        cafile=str(replica / "ca.crt"),
    )


async def test_replicas_share_one_certificate_and_the_configuration_trusts_it(
    kube: KubeEmulator, tmp_path: pathlib.Path
) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    await kube.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hooks-tls", "namespace": NAMESPACE}}
    )
    await kube.create(configuration("ValidatingWebhookConfiguration"))
    one, two = kube_client(), kube_client()
    try:
        first, second = await asyncio.gather(
            webhook_tls.sync(one, tls_for(tmp_path / "a"), NOW),
            webhook_tls.sync(two, tls_for(tmp_path / "b"), NOW),
        )
        assert first == second, "both replicas serve the certificate that won the race"
        for replica in ("a", "b"):
            assert (tmp_path / replica / "tls.crt").read_bytes() == first.cert
            assert (tmp_path / replica / "ca.crt").read_bytes() == first.ca_cert
        stored = kube.get("secrets", "hooks-tls", NAMESPACE)
        assert stored is not None and certificates.from_secret(stored["data"]) == first
        hooks = kube.get("validatingwebhookconfigurations", "hooks")
        assert hooks is not None
        bundle = hooks["webhooks"][0]["clientConfig"]["caBundle"]
        assert bundle == first.secret_data()["ca.crt"]

        version = stored["metadata"]["resourceVersion"]
        await webhook_tls.sync(one, tls_for(tmp_path / "a"), NOW + datetime.timedelta(days=30))
        again = kube.get("secrets", "hooks-tls", NAMESPACE)
        assert again is not None and again["metadata"]["resourceVersion"] == version, "nothing to renew"

        reset = configuration(
            "ValidatingWebhookConfiguration"
        )  # what a re-render (helm upgrade, GitOps) applies
        reset["metadata"]["resourceVersion"] = hooks["metadata"]["resourceVersion"]
        await asyncio.to_thread(
            kube_client()._call_sync,
            "PUT",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/hooks",
            reset,
            None,
            "application/json",
        )
        assert (
            "caBundle"
            not in (kube.get("validatingwebhookconfigurations", "hooks") or {})["webhooks"][0]["clientConfig"]
        )
        await webhook_tls.sync(two, tls_for(tmp_path / "b"), NOW)
        restored = kube.get("validatingwebhookconfigurations", "hooks")
        assert restored is not None and restored["webhooks"][0]["clientConfig"]["caBundle"] == bundle
    finally:
        one.close()
        two.close()


def kube_client() -> kube.Kube:
    return kube.Kube.connect()
