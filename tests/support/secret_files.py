"""Secrets laid out as the kubelet mounts them, for agents under test, with certificates from `trustme`.

The kubelet writes a Secret volume as ``<dir>/<name>/..data -> ..<version>/`` plus one symlink per key
(``<dir>/<name>/<key> -> ..data/<key>``), and updates it by writing a new version directory and swapping
``..data`` atomically. `SecretFiles` does the same, so rotation tests exercise what a pod sees.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import ssl

import trustme
from otlp_agent.api import secret_mounts

_versions = itertools.count()


class SecretFiles:
    """A secrets directory (what OTLP_AGENT_SECRETS_DIR points at)."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self._data: dict[str, dict[str, bytes]] = {}

    def write(self, name: str, **keys: bytes) -> None:
        """Set keys of Secret `name` (others keep their value), swapping them in atomically."""
        data = self._data.setdefault(name, {})
        data.update(keys)
        folder = self.root / name
        version = folder / f"..v{next(_versions)}"
        version.mkdir(parents=True)
        for key, value in data.items():
            (version / key).write_bytes(value)
        staging = folder / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, folder / "..data")
        for key in data:
            link = folder / key
            if not link.is_symlink():
                link.symlink_to(pathlib.Path("..data") / key)

    def write_tls(self, name: str, cert: trustme.LeafCert, ca: trustme.CA | None = None) -> None:
        """A kubernetes.io/tls Secret: tls.crt (chain), tls.key, and ca.crt when `ca` is given."""
        keys = {
            secret_mounts.TLS_CERT: cert.cert_chain_pems[0].bytes(),
            secret_mounts.TLS_KEY: cert.private_key_pem.bytes(),
        }
        if ca is not None:
            keys[secret_mounts.CA_CERT] = ca.cert_pem.bytes()
        self.write(name, **keys)


def der(cert: trustme.LeafCert) -> bytes:
    """A leaf certificate in DER, to compare with what a TLS peer presented."""
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client context trusting `ca`, presenting `cert` when given."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context
