"""The operator's own webhook certificate (pure issuance, explicit time): issued once, kept while good,
renewed from the same CA before expiry or when the names change, and a CA rotation that keeps the old CA
trusted until it expires, so the API server never meets a certificate it does not trust."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from otlp_operator.reconcile import certificates

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NAMES = ["otlp-operator-webhook.otlp-system.svc", "otlp-operator-webhook.otlp-system.svc.cluster.local"]


def days(n: float) -> datetime.datetime:
    return T0 + datetime.timedelta(days=n)


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert, ca = x509.load_pem_x509_certificate(cert_pem), x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError):
        return False
    return True


def test_without_a_certificate_one_is_issued_for_the_names_and_signed_by_the_ca() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    assert issued is not None
    assert sorted(certificates.covered(issued.cert)) == sorted(NAMES)
    assert signed_by(issued.cert, issued.ca_cert) and issued.bundle(T0) == issued.ca_cert
    assert certificates.from_secret(issued.secret_data()) == issued


def test_a_good_certificate_is_kept() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    assert certificates.renewal(issued, NAMES, days(200)) is None


def test_a_certificate_near_expiry_is_renewed_from_the_same_ca() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    assert issued is not None
    renewed = certificates.renewal(
        issued, NAMES, days(certificates.LEAF_DAYS - certificates.LEAF_RENEW_DAYS + 1)
    )
    assert renewed is not None and renewed.cert != issued.cert
    assert renewed.ca_cert == issued.ca_cert and signed_by(renewed.cert, issued.ca_cert)


def test_new_names_get_a_new_certificate() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    renewed = certificates.renewal(issued, [*NAMES, "127.0.0.1"], days(1))
    assert renewed is not None and "127.0.0.1" in certificates.covered(renewed.cert)


def test_a_ca_near_expiry_is_rotated_and_the_old_one_stays_trusted_until_it_expires() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    assert issued is not None
    when = days(certificates.CA_DAYS - certificates.CA_RENEW_DAYS + 1)
    rotated = certificates.renewal(issued, NAMES, when)
    assert rotated is not None and rotated.ca_cert != issued.ca_cert
    assert signed_by(rotated.cert, rotated.ca_cert)
    assert rotated.bundle(when) == rotated.ca_cert + issued.ca_cert
    assert rotated.bundle(days(certificates.CA_DAYS + 1)) == rotated.ca_cert


def test_an_incomplete_secret_holds_no_certificate() -> None:
    issued = certificates.renewal(None, NAMES, T0)
    assert issued is not None
    partial = {k: v for k, v in issued.secret_data().items() if k != "tls.key"}
    assert certificates.from_secret(partial) is None and certificates.from_secret(None) is None
