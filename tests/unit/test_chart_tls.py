"""Webhook TLS, the three ways: chart-generated, cert-manager, and the user's own Secret.

In each, the API server's trust (caBundle, or cert-manager's CA injection) and the certificate the operator
serves (the mounted Secret, passed to `otlp-operator run`) must belong together, and the certificate must
name the host the API server calls. Checked with `cryptography` on the actual rendered PEMs.
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support import chart_render as support

SERVICE = f"{support.FULLNAME}-webhook"
SERVICE_NAMES = {
    SERVICE,
    f"{SERVICE}.{support.NAMESPACE}",
    f"{SERVICE}.{support.NAMESPACE}.svc",
    f"{SERVICE}.{support.NAMESPACE}.svc.cluster.local",
}


@functools.cache
def rendered(scenario: str) -> list[dict[str, Any]]:
    return support.render(support.CI_VALUES[scenario])


def pem(b64: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    try:
        key.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    except Exception:
        return False
    return cert.issuer == ca.subject


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def mounted_secret(objects: list[dict[str, Any]]) -> tuple[str, str]:
    """(Secret name, mount path) of the operator's webhook certificate volume."""
    pod = support.one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-tls")
    assert mount["readOnly"] is True
    return volume["secret"]["secretName"], mount["mountPath"]


def test_generated_the_webhooks_trust_the_ca_that_signed_the_served_certificate() -> None:
    objects = rendered("injection")
    secret = support.one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca, cert = pem(secret["data"]["ca.crt"]), pem(secret["data"]["tls.crt"])
    bundles = {hook["clientConfig"]["caBundle"] for hook in support.webhooks(objects)}
    assert bundles == {secret["data"]["ca.crt"]}, "both webhook configurations carry the same CA"
    assert signed_by(cert, ca)
    assert set(san(cert).get_values_for_type(x509.DNSName)) == SERVICE_NAMES
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3649 <= days <= 3650


def test_generated_the_operator_serves_the_secret_it_mounts() -> None:
    objects = rendered("default")
    name, path = mounted_secret(objects)
    secret = support.one(objects, "Secret")
    assert name == secret["metadata"]["name"]
    args = support.operator_container(objects)["args"]
    assert f"--webhook-cert={path}/tls.crt" in args and f"--webhook-key={path}/tls.key" in args
    assert {"tls.crt", "tls.key"} <= set(secret["data"])


def test_generated_the_private_key_belongs_to_the_certificate() -> None:
    from cryptography.hazmat.primitives import serialization

    secret = support.one(rendered("default"), "Secret")
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), password=None)
    assert key.public_key() == pem(secret["data"]["tls.crt"]).public_key()


def test_generated_each_render_has_its_own_ca_and_the_pods_roll_when_it_changes() -> None:
    first, second = support.render(), support.render()
    assert support.one(first, "Secret")["data"]["ca.crt"] != support.one(second, "Secret")["data"]["ca.crt"]

    def checksum(objects: list[dict[str, Any]]) -> str:
        return str(
            support.one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"][
                "checksum/webhook-tls"
            ]
        )

    assert checksum(first) != checksum(second)


def test_generated_the_secret_records_when_to_reissue() -> None:
    secret = support.one(rendered("default"), "Secret")
    annotations = secret["metadata"]["annotations"]
    cert = pem(secret["data"]["tls.crt"])
    not_after = datetime.datetime.fromtimestamp(
        int(annotations["telemetry.otlp-operator.io/not-after"]), datetime.UTC
    )
    assert abs((not_after - cert.not_valid_after_utc).total_seconds()) < 120
    assert annotations["telemetry.otlp-operator.io/sans"]


def test_generated_certificate_covers_an_out_of_cluster_webhook_url() -> None:
    objects = rendered("out-of-cluster-webhook")
    urls = sorted(hook["clientConfig"]["url"] for hook in support.webhooks(objects))
    assert urls == ["https://127.0.0.1:9443/inject", "https://127.0.0.1:9443/validate"]
    assert all("service" not in hook["clientConfig"] for hook in support.webhooks(objects))
    cert = pem(support.one(objects, "Secret")["data"]["tls.crt"])
    assert ipaddress.ip_address("127.0.0.1") in san(cert).get_values_for_type(x509.IPAddress)
    hostname = support.render({"webhook": {"url": "https://operator.dev.example:8443/base"}})
    named = support.validating_webhook(hostname)
    assert named["clientConfig"]["url"] == "https://operator.dev.example:8443/base/validate"
    names = san(pem(support.one(hostname, "Secret")["data"]["tls.crt"])).get_values_for_type(x509.DNSName)
    assert "operator.dev.example" in names


def test_existing_secret_is_mounted_and_its_ca_bundle_is_trusted() -> None:
    objects = rendered("existing-secret")
    values = support.CI_VALUES["existing-secret"]["webhook"]["tls"]
    assert not support.by_kind(objects, "Secret"), "the chart must not create or overwrite the user's Secret"
    assert mounted_secret(objects)[0] == values["existingSecret"]
    hooks = support.webhooks(objects)
    assert len(hooks) == 2 and {hook["clientConfig"]["caBundle"] for hook in hooks} == {values["caBundle"]}
    assert pem(values["caBundle"]).extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_cert_manager_issues_the_mounted_secret_and_injects_its_ca() -> None:
    objects = rendered("cert-manager")
    assert not support.by_kind(objects, "Secret")
    certificates = {c["metadata"]["name"]: c for c in support.by_kind(objects, "Certificate")}
    serving = certificates[f"{support.FULLNAME}-webhook"]
    assert serving["spec"]["secretName"] == mounted_secret(objects)[0]
    assert set(serving["spec"]["dnsNames"]) == SERVICE_NAMES
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    configurations = [obj for obj in objects if obj["kind"] in kinds]
    assert len(configurations) == 2
    for configuration in configurations:
        annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert annotation == f"{support.NAMESPACE}/{serving['metadata']['name']}"
        assert all("caBundle" not in hook["clientConfig"] for hook in configuration["webhooks"])


def test_cert_manager_signs_with_a_private_ca_so_renewals_keep_the_ca_bundle() -> None:
    objects = rendered("cert-manager")
    issuers = {i["metadata"]["name"]: i["spec"] for i in support.by_kind(objects, "Issuer")}
    certificates = {c["metadata"]["name"]: c["spec"] for c in support.by_kind(objects, "Certificate")}
    serving = certificates[f"{support.FULLNAME}-webhook"]
    ca_issuer = issuers[serving["issuerRef"]["name"]]
    ca_certificate = next(
        c for c in certificates.values() if c["secretName"] == ca_issuer["ca"]["secretName"]
    )
    assert ca_certificate["isCA"] is True
    assert "selfSigned" in issuers[ca_certificate["issuerRef"]["name"]]


def test_cert_manager_can_use_the_clusters_issuer_for_both_webhooks() -> None:
    objects = rendered("cert-manager-issuer")
    assert not support.by_kind(objects, "Issuer")
    (certificate,) = support.by_kind(objects, "Certificate")
    assert certificate["spec"]["issuerRef"] == {
        "name": "internal-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    annotated = [
        o
        for o in objects
        if o["kind"] in kinds and "cert-manager.io/inject-ca-from" in o["metadata"]["annotations"]
    ]
    assert len(annotated) == 2
