"""The Secrets a pipeline names, as read-only volumes of the agent container: one volume per Secret.

Contract with the agent (`otlp_agent.api.secret_mounts`): key `<key>` of Secret `<name>` is the file
`$OTLP_AGENT_SECRETS_DIR/<name>/<key>`. The container gets that variable explicitly, and each Secret
named by the spec — a receiver's `tls.certSecret` (`tls.crt`, `tls.key`) and `tls.clientCaSecret`, its
`auth.bearerTokenSecret` and `auth.tenants[].bearerTokenSecret`, an exporter's `tls.caSecret` and
`tls.certSecret`, its `headersFrom` — is one Secret volume mounted read-only at `<dir>/<name>`,
projecting only the keys the spec names (`items`), so a Secret that also holds unrelated keys does not
expose them to the agent. Disabled receivers are skipped:
their Secrets are not read, and a missing one must not keep the pod from starting.

No mount uses `subPath`, so the kubelet's atomic updates reach the files and a rotated Secret is picked
up by the agent without a restart. Nothing here depends on a Secret's content (the operator never reads
Secrets): which Secrets and keys are named is part of the rendered config, so changing *that* changes
the config hash and rolls the pods, while changing a Secret's data does not.

File modes: the agent runs as user and group 10001. In the operator's own pods fsGroup is 10001, so the
kubelet gives the files that group and 0440 is enough. An injected sidecar lives in the application's
pod, whose fsGroup (if any) is not ours, so its files are 0444; only the agent container mounts them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from otlp_agent.api import loader, secret_mounts, spec

from otlp_operator import naming

DIR = secret_mounts.DEFAULT_DIR
DIR_ENV = secret_mounts.ENV_DIR
POD_MODE = 0o440
SIDECAR_MODE = 0o444
VOLUME_PREFIX = "secret-"


@dataclasses.dataclass(frozen=True)
class Reference:
    """A Secret the agent reads, and the keys of it the spec names (sorted, distinct)."""

    name: str
    keys: tuple[str, ...]


def referenced(pipeline: loader.OTLPPipeline) -> list[Reference]:
    """Every Secret the agent of `pipeline` reads, sorted by name, each with the keys it reads."""
    keys: dict[str, set[str]] = {}
    for name, key in _pairs(pipeline.spec):
        keys.setdefault(name, set()).add(key)
    return [Reference(name, tuple(sorted(keys[name]))) for name in sorted(keys)]


def directory(pipeline: loader.OTLPPipeline) -> str:
    """Where the Secrets are mounted: the spec's own `OTLP_AGENT_SECRETS_DIR` if it sets one (a spec
    variable replaces the operator's, so the mounts follow it), else the agent's default."""
    chosen = next((var.value for var in pipeline.spec.env if var.name == DIR_ENV), "")
    return chosen.rstrip("/") if chosen.startswith("/") and chosen.strip("/") else DIR


def volume_name(secret: str, prefix: str = "") -> str:
    """The pod volume of Secret `secret` (a DNS label, distinct per Secret)."""
    return naming.dns_label(f"{prefix}{VOLUME_PREFIX}{secret}")


def volumes(pipeline: loader.OTLPPipeline, *, prefix: str = "", mode: int = POD_MODE) -> list[dict[str, Any]]:
    """One Secret volume per referenced Secret, projecting the referenced keys."""
    return [
        {
            "name": volume_name(ref.name, prefix),
            "secret": {
                "secretName": ref.name,
                "items": [{"key": key, "path": key} for key in ref.keys],
                "defaultMode": mode,
            },
        }
        for ref in referenced(pipeline)
    ]


def mounts(pipeline: loader.OTLPPipeline, *, prefix: str = "") -> list[dict[str, Any]]:
    """The agent container's read-only mounts of those volumes, at `<directory>/<secret>`."""
    root = directory(pipeline)
    return [
        {"name": volume_name(ref.name, prefix), "mountPath": f"{root}/{ref.name}", "readOnly": True}
        for ref in referenced(pipeline)
    ]


def env(pipeline: loader.OTLPPipeline) -> list[dict[str, Any]]:
    """`OTLP_AGENT_SECRETS_DIR` for the agent container, when it reads any Secret."""
    if not referenced(pipeline):
        return []
    return [{"name": DIR_ENV, "value": directory(pipeline)}]


def _pairs(s: spec.OTLPPipelineSpec) -> list[tuple[str, str]]:
    """(Secret, key) for every Secret key the agent reads."""
    otlp = s.receivers.otlp
    pairs: list[tuple[str, str]] = []
    for receiver in (otlp.grpc, otlp.http):
        if not receiver.enabled:
            continue
        if receiver.tls is not None:
            pairs += _tls_pair(receiver.tls.cert_secret)
            pairs += _ref_pair(receiver.tls.client_ca_secret)
        if receiver.auth is not None:
            pairs += _ref_pair(receiver.auth.bearer_token_secret)
            for tenant in receiver.auth.tenants:
                pairs += _ref_pair(tenant.bearer_token_secret)
    for exporter in s.exporters:
        pairs += _ref_pair(exporter.tls.ca_secret)
        pairs += _tls_pair(exporter.tls.cert_secret)
        for header in exporter.headers_from:
            pairs += _ref_pair(header.secret_key_ref)
    return pairs


def _tls_pair(secret: str | None) -> list[tuple[str, str]]:
    """A kubernetes.io/tls Secret: its certificate chain and private key."""
    if secret is None:
        return []
    return [(secret, secret_mounts.TLS_CERT), (secret, secret_mounts.TLS_KEY)]


def _ref_pair(ref: spec.SecretKeyRef | None) -> list[tuple[str, str]]:
    return [] if ref is None else [(ref.name, ref.key)]
