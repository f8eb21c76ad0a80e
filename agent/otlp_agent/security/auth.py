"""Credentials from mounted Secrets: the bearer tokens receivers demand, and the headers exporters send.

A receiver's `auth` holds a token without tenant (`bearerTokenSecret`) and/or one token per tenant
(`tenants`); a request's token says who sent it, and routes can match that tenant — an identity the client
cannot fake, unlike anything in the data. Token checks are constant-time (`hmac.compare_digest`, against
every token, so timing does not tell which one matched) and a refusal never says more than "missing" or
"invalid"; neither values nor what a client sent appear in any log line, metric or message. A token that
two entries share (a misconfiguration) is refused rather than guessed, with a log line naming the tenants.
Both read their Secret files again when they change (`secret_files.Reloadable`).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Sequence

import grpc

from otlp_agent.api import secret_mounts, spec
from otlp_agent.otlp import errors
from otlp_agent.security import secret_files
from otlp_agent.telemetry import logs

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


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who an authenticated request comes from: its tenant, or None for the token without tenant."""

    tenant: str | None


class BearerTokens:
    """The tokens a receiver accepts in `authorization: Bearer <token>`, each naming a tenant (or none)."""

    def __init__(self, settings: spec.ReceiverAuth, what: str) -> None:
        refs: list[tuple[str | None, spec.SecretKeyRef]] = [
            (t.name, t.bearer_token_secret) for t in settings.tenants
        ]
        if settings.bearer_token_secret is not None:
            refs.insert(0, (None, settings.bearer_token_secret))
        self._tenants = [tenant for tenant, _ in refs]
        paths = [secret_mounts.path_of(ref.name, ref.key) for _, ref in refs]
        self._tokens = secret_files.Reloadable(
            f"{what} bearer tokens",
            paths,
            lambda contents: [_secret_value(data, str(p)) for data, p in zip(contents, paths, strict=True)],
        )
        self._what = what

    def authenticate(self, authorization: str | None) -> Identity | errors.ReceiveError:
        """Who `authorization` says the client is; else the refusal to answer with."""
        if not authorization:
            return _refusal("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, credentials = authorization.strip().partition(" ")
        presented = credentials.strip().encode("utf-8", "replace")
        # Every token is compared (no early exit), so the time taken does not say which one matched.
        matches = [hmac.compare_digest(presented, token) for token in self._tokens.get()]
        found = [tenant for tenant, match in zip(self._tenants, matches, strict=True) if match]
        if scheme.lower() != _SCHEME or not found:
            return _refusal("invalid bearer token")
        if len(found) > 1:
            logs.event(
                "ambiguous_token",
                f"{self._what}: tenants {sorted(str(t) for t in found)} share one token; requests bearing it "
                "are refused until the Secrets differ",
            )
            return _refusal("invalid bearer token")
        return Identity(found[0])


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
