"""TLS material from mounted Secrets, for the receivers (server side) and the exporters (client side).

Both sides rebuild their credentials when the files change (see `secret_files.Reloadable`), so a rotated
Secret is used by the next handshake without a restart:
- HTTP server: the listening socket keeps one SSLContext whose SNI callback (called on every handshake,
  with or without SNI) switches the connection to the context built from the current files;
- gRPC server: `grpc.dynamic_ssl_server_credentials` asks a fetcher for new material on every handshake;
- clients: `ClientTls.version` grows on a rebuild, and transports make a new channel / context from it.

Verification is never turned off unless `insecureSkipVerify` says so (HTTP exporters only: grpcio cannot
skip verification, and validation refuses it for protocol grpc).
"""

from __future__ import annotations

import dataclasses
import pathlib
import ssl
from collections.abc import Sequence
from typing import Any

import grpc

from otlp_agent.api import secret_mounts, spec
from otlp_agent.security import secret_files


@dataclasses.dataclass(frozen=True)
class _ServerMaterial:
    context: ssl.SSLContext
    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None


class ServerTls:
    """A receiver's certificate (and client CA for mTLS), reloaded when the Secret changes."""

    def __init__(self, settings: spec.ServerTLS, what: str) -> None:
        self.mutual = settings.client_ca_secret is not None
        self._cert_path = secret_mounts.path_of(settings.cert_secret, secret_mounts.TLS_CERT)
        self._key_path = secret_mounts.path_of(settings.cert_secret, secret_mounts.TLS_KEY)
        paths = [self._cert_path, self._key_path]
        if settings.client_ca_secret is not None:
            paths.append(secret_mounts.path_of(settings.client_ca_secret.name, settings.client_ca_secret.key))
        self._material = secret_files.Reloadable(f"{what} TLS certificate", paths, self._build)
        self._grpc_version = -1

    def _build(self, contents: Sequence[bytes]) -> _ServerMaterial:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert_path, self._key_path)
        client_ca = contents[2] if self.mutual else None
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=_pem_text(client_ca))
        return _ServerMaterial(context, contents[0], contents[1], client_ca)

    def ssl_context(self) -> ssl.SSLContext:
        """For an asyncio/aiohttp server: every handshake uses the certificate current at that moment."""
        # A context of its own, not one kept in the material: the callback refers to this object, and a
        # reference cycle through an SSLContext's sni_callback is left to the garbage collector otherwise.
        material = self._material.get()
        listening = self._build(
            [material.cert_chain, material.private_key, material.client_ca or b""]
        ).context
        listening.sni_callback = self._switch
        return listening

    def _switch(self, connection: Any, server_name: str | None, listening: ssl.SSLContext) -> None:
        current = self._material.get().context
        if current is not listening:
            connection.context = current

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """For grpc.aio `add_secure_port`: material is fetched again on every handshake when it changed."""
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_configuration(), self._fetch, require_client_authentication=self.mutual
        )

    def _grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        material = self._material.get()
        self._grpc_version = self._material.version
        return grpc.ssl_server_certificate_configuration(
            [(material.private_key, material.cert_chain)], root_certificates=material.client_ca
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        self._material.poll()
        if self._material.version == self._grpc_version:
            return None  # grpc: None means "keep the current configuration"
        return self._grpc_configuration()


@dataclasses.dataclass(frozen=True)
class _ClientMaterial:
    context: ssl.SSLContext
    root_certificates: bytes | None
    private_key: bytes | None
    cert_chain: bytes | None


class ClientTls:
    """An exporter's trust (CA) and identity (client certificate), reloaded when their files change."""

    def __init__(self, settings: spec.ClientTLS, what: str) -> None:
        self.skip_verify = settings.insecure_skip_verify
        self._ca_path = _client_ca_path(settings)
        self._pair: tuple[pathlib.Path, pathlib.Path] | None = None
        if settings.cert_secret is not None:
            self._pair = (
                secret_mounts.path_of(settings.cert_secret, secret_mounts.TLS_CERT),
                secret_mounts.path_of(settings.cert_secret, secret_mounts.TLS_KEY),
            )
        paths = [*([self._ca_path] if self._ca_path else []), *(self._pair or ())]
        self._material = secret_files.Reloadable(f"{what} TLS client settings", paths, self._build)

    @property
    def version(self) -> int:
        """Grows every time the files changed and were loaded (after a `current()` noticed it)."""
        return self._material.version

    def _build(self, contents: Sequence[bytes]) -> _ClientMaterial:
        ca = contents[0] if self._ca_path else None
        context = ssl.create_default_context(cadata=_pem_text(ca) if ca else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        key = chain = None
        if self._pair is not None:
            context.load_cert_chain(*self._pair)
            chain, key = contents[-2], contents[-1]
        return _ClientMaterial(context, ca, key, chain)

    def ssl_context(self) -> ssl.SSLContext:
        """The client context for the files as they are now (a new object after a rotation)."""
        return self._material.get().context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        material = self._material.get()
        return grpc.ssl_channel_credentials(
            root_certificates=material.root_certificates,
            private_key=material.private_key,
            certificate_chain=material.cert_chain,
        )

    def refresh(self) -> int:
        """Look at the files (if due) and return `version`: a transport whose channel was made at an older
        version makes a new one."""
        self._material.poll()
        return self._material.version


def _client_ca_path(settings: spec.ClientTLS) -> pathlib.Path | None:
    if settings.ca_secret is not None:
        return secret_mounts.path_of(settings.ca_secret.name, settings.ca_secret.key)
    return pathlib.Path(settings.ca_file) if settings.ca_file else None


def _pem_text(data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("a CA bundle must be PEM text") from None
