"""Credentials from mounted Secrets: the bearer token receivers demand, and the headers exporters send.

Token checks are constant-time (`hmac.compare_digest`) and a refusal never says more than "missing" or
"invalid"; neither values nor what a client sent appear in any log line, metric or message. Both read
their Secret files again when they change (`secret_files.Reloadable`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import grpc

from otlp_agent.api import secret_mounts, spec
from otlp_agent.otlp import errors
from otlp_agent.security import secret_files

_SCHEME = "bearer"
UNAUTHENTICATED_REASON = "unauthenticated"
#: Bytes a header value may hold: visible ASCII and spaces (no CR/LF, so no header injection).
_HEADER_BYTES = frozenset(range(0x20, 0x7F)) | {0x09}


def _secret_value(data: bytes, path: str) -> bytes:
    """A Secret value as a header value: trailing newline removed (files often end with one)."""
    value = data.strip(b"\r\n\t ")
    if not value:
        raise ValueError(f"{path} is empty")
    if not set(value) <= _HEADER_BYTES:
        raise ValueError(f"{path} holds bytes not allowed in an HTTP header")
    return value


class BearerToken:
    """The token a receiver requires in `authorization: Bearer <token>`."""

    def __init__(self, settings: spec.ReceiverAuth, what: str) -> None:
        ref = settings.bearer_token_secret
        path = secret_mounts.path_of(ref.name, ref.key)
        self._token = secret_files.Reloadable(
            f"{what} bearer token", [path], lambda contents: _secret_value(contents[0], str(path))
        )

    def check(self, authorization: str | None) -> errors.ReceiveError | None:
        """None when `authorization` carries the current token; else the refusal to answer with."""
        if not authorization:
            return _refusal("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, credentials = authorization.strip().partition(" ")
        presented = credentials.strip().encode("utf-8", "replace")
        expected = self._token.get()
        if scheme.lower() != _SCHEME or not hmac.compare_digest(presented, expected):
            return _refusal("invalid bearer token")
        return None


def _refusal(message: str) -> errors.ReceiveError:
    return errors.ReceiveError(message, 401, grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_REASON)


class SecretHeaders:
    """An exporter's `headersFrom`: header name -> value read from Secret files, current at each call."""

    def __init__(self, headers_from: Sequence[spec.HeaderFromSecret], what: str) -> None:
        self._names = [header.name for header in headers_from]
        paths = [secret_mounts.path_of(h.secret_key_ref.name, h.secret_key_ref.key) for h in headers_from]
        self._values = secret_files.Reloadable(
            f"{what} headers from Secrets",
            paths,
            lambda contents: [
                _secret_value(data, str(p)).decode() for data, p in zip(contents, paths, strict=True)
            ],
        )
        self._known: set[str] = set(self._values.get())

    def current(self) -> dict[str, str]:
        values = self._values.get()
        self._known.update(values)
        return dict(zip(self._names, values, strict=True))

    def redact(self, text: str) -> str:
        """`text` (a backend's error message, say) with every secret value seen so far replaced."""
        for value in self._known:
            text = text.replace(value, "<redacted>")
        return text
