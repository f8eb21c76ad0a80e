"""The webhook's serving certificate and its CA, issued by the operator itself (pure: no API, explicit time).

Kept in one Secret (keys below), so every replica serves the same certificate and the API server trusts
it through the webhook configurations' `caBundle`:

| key | what |
|---|---|
| `ca.crt`, `ca.key` | the operator's own CA (ECDSA P-256), valid `CA_DAYS` |
| `tls.crt`, `tls.key` | the serving certificate for the webhook Service's names (or IPs), valid `LEAF_DAYS` |
| `ca-previous.crt` | the CA before the last CA rotation, kept in the bundle while it is valid |

`renewal` says what to issue at time `now`: nothing while the certificate covers the names and has more
than `LEAF_RENEW_DAYS` left; a new serving certificate from the same CA otherwise (the bundle does not
change, so replicas still serving the old one stay trusted); a new CA (and certificate) once the CA has
less than `CA_RENEW_DAYS` left, the old CA kept in the bundle until it expires, so no replica is ever
served a certificate the API server does not trust. The `cryptography` package does the X.509 work.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CA_RENEW_DAYS = 730
LEAF_DAYS = 365
LEAF_RENEW_DAYS = 120
KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key", "ca-previous.crt")


@dataclasses.dataclass(frozen=True)
class Material:
    """PEM bytes of the CA, the serving certificate, and the previous CA (b"" when none)."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    previous_ca: bytes = b""

    def secret_data(self) -> dict[str, str]:
        values = (self.ca_cert, self.ca_key, self.cert, self.key, self.previous_ca)
        return {k: base64.b64encode(v).decode("ascii") for k, v in zip(KEYS, values, strict=True)}

    def bundle(self, now: datetime.datetime) -> bytes:
        """What the API server must trust: the CA, and the previous one while it is valid."""
        if self.previous_ca and _not_after(self.previous_ca) > now:
            return self.ca_cert + self.previous_ca
        return self.ca_cert


def from_secret(data: dict[str, str] | None) -> Material | None:
    """The material in a Secret's `data`, or None when it holds none (or not all of it)."""
    decoded = {k: base64.b64decode(v) for k, v in (data or {}).items() if k in KEYS}
    if not all(decoded.get(k) for k in KEYS[:4]):
        return None
    return Material(*(decoded.get(k, b"") for k in KEYS))


def renewal(current: Material | None, names: list[str], now: datetime.datetime) -> Material | None:
    """The material to store instead of `current` at `now`, or None when `current` is good."""
    if current is None:
        return issue_all(names, now)
    ca_left = _not_after(current.ca_cert) - now
    if ca_left < datetime.timedelta(days=CA_RENEW_DAYS):
        fresh = issue_all(names, now)
        return dataclasses.replace(fresh, previous_ca=current.ca_cert)
    leaf_left = _not_after(current.cert) - now
    if leaf_left < datetime.timedelta(days=LEAF_RENEW_DAYS) or sorted(covered(current.cert)) != sorted(names):
        cert, key = _issue_leaf(current.ca_cert, current.ca_key, names, now)
        return dataclasses.replace(current, cert=cert, key=key)
    return None


def issue_all(names: list[str], now: datetime.datetime) -> Material:
    """A new CA and a serving certificate for `names` signed by it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{names[0]} webhook CA")])
    ca = (
        _builder(subject, subject, ca_key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert = ca.public_bytes(serialization.Encoding.PEM)
    ca_pem = _key_pem(ca_key)
    cert, key = _issue_leaf(ca_cert, ca_pem, names, now)
    return Material(ca_cert, ca_pem, cert, key)


def covered(cert_pem: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    return [*sans.get_values_for_type(x509.DNSName), *ips]


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _issue_leaf(
    ca_cert_pem: bytes, ca_key_pem: bytes, names: list[str], now: datetime.datetime
) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "the CA key is the one issue_all made"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    days = min(LEAF_DAYS, max(1, (_not_after(ca_cert_pem) - now).days))  # never outlives its CA
    cert = (
        _builder(subject, ca.subject, key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    start = now - datetime.timedelta(minutes=5)  # tolerate clocks a little behind ours
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _not_after(cert_pem: bytes) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
