"""Webhook TLS, the three ways: issued by the operator (the default), cert-manager, and the user's own Secret.

With cert-manager or a Secret of yours, the API server's trust (caBundle, or cert-manager's CA injection)
and the certificate the operator serves (the mounted Secret, passed to `otlp-operator run`) must belong
together, and the certificate must name the host the API server calls (checked with `cryptography` on the
rendered PEMs). By default the chart renders no certificate and no caBundle at all: the operator is told
where to keep its own (Secret, names, configurations), so rendering twice gives the same objects, and a
re-render can never replace or reset it.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from cryptography import x509

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


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def mounted_secret(objects: list[dict[str, Any]]) -> tuple[str, str]:
    """(Secret name, mount path) of the operator's webhook certificate volume."""
    pod = support.one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-tls")
    assert mount["readOnly"] is True
    return volume["secret"]["secretName"], mount["mountPath"]


def without_release_noise(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [support.strip(obj) for obj in objects]


def test_by_default_rendering_twice_gives_the_same_objects_and_no_certificate() -> None:
    first, second = (
        support.render(support.CI_VALUES["injection"]),
        support.render(support.CI_VALUES["injection"]),
    )
    assert without_release_noise(first) == without_release_noise(second)
    secret = support.one(first, "Secret")
    assert "data" not in secret and "stringData" not in secret, "the operator fills the Secret in"
    assert all("caBundle" not in hook["clientConfig"] for hook in support.webhooks(first))


def test_by_default_the_operator_issues_its_certificate_for_the_service_names_and_both_configurations() -> (
    None
):
    objects = rendered("injection")
    args = support.operator_container(objects)["args"]
    secret = support.one(objects, "Secret")["metadata"]["name"]
    assert f"--webhook-tls-secret={support.NAMESPACE}/{secret}" in args
    assert {
        a.removeprefix("--webhook-tls-san=") for a in args if a.startswith("--webhook-tls-san=")
    } == SERVICE_NAMES
    configurations = [
        a.removeprefix("--webhook-tls-configuration=") for a in args if "tls-configuration" in a
    ]
    assert configurations == [f"validating/{support.FULLNAME}", f"mutating/{support.FULLNAME}"]
    assert {"--webhook-cert=/tmp/webhook-tls/tls.crt", "--webhook-key=/tmp/webhook-tls/tls.key"} <= set(args)
    pod = support.one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"], "nothing to mount: the operator writes its files"
    role = next(r for r in support.by_kind(objects, "Role") if r["metadata"]["name"].endswith("-webhook-tls"))
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get", "update"]}
    ]


def test_by_default_an_out_of_cluster_webhook_url_is_covered_by_the_operators_certificate() -> None:
    objects = rendered("out-of-cluster-webhook")
    urls = sorted(hook["clientConfig"]["url"] for hook in support.webhooks(objects))
    assert urls == ["https://127.0.0.1:9443/inject", "https://127.0.0.1:9443/validate"]
    assert all("service" not in hook["clientConfig"] for hook in support.webhooks(objects))
    assert "--webhook-tls-san=127.0.0.1" in support.operator_container(objects)["args"]
    named = support.render({"webhook": {"url": "https://operator.dev.example:8443/base"}})
    assert (
        support.validating_webhook(named)["clientConfig"]["url"]
        == "https://operator.dev.example:8443/base/validate"
    )
    assert "--webhook-tls-san=operator.dev.example" in support.operator_container(named)["args"]


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
