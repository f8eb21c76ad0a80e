"""The operator's own webhook certificate, kept in the cluster: one Secret, the files the server reads, and
the webhook configurations' `caBundle` (the Helm chart's default TLS mode).

Every replica runs `sync` at start and every `Tls.interval` seconds:

1. read the Secret (by name); `certificates.renewal` says whether to issue (none yet, names changed,
   near expiry); a new one is written with the Secret's resourceVersion, so when two replicas renew at
   once one wins (409) and the other adopts the winner's on its next read, right away;
2. write the certificate, key and CA bundle to the files the webhook server serves (atomically: a
   temporary file renamed over the old one); the server reloads them in place;
3. set `caBundle` on every webhook of the named configurations that lacks the current bundle (a JSON
   patch guarded by the configuration's resourceVersion).

Helm never renders the certificate, so re-rendering the chart (an upgrade, a GitOps sync) cannot change it,
and the chart's objects carry no caBundle for a sync to reset. RBAC: get/update on that one Secret and
get/patch on those two configurations (resourceNames). The chart creates the Secret empty and grants no
`create`; only an operator run outside the chart (with `create` on secrets) creates a missing Secret itself.
Under the chart, a deleted Secret makes that create fail with 403: `sync` raises `SecretMissing`, whose
message tells the user to recreate it (`helm upgrade`), and the caller logs it once.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import logging
import os
import pathlib
import tempfile
from typing import Any

from otlp_operator.reconcile import certificates, kube

_log = logging.getLogger(__name__)


class SecretMissing(Exception):
    """The Secret does not exist and this operator may not create it (403): a user must recreate it."""


@dataclasses.dataclass(frozen=True)
class Tls:
    """Where the operator keeps its webhook certificate, and whom it tells about the CA."""

    namespace: str
    secret: str
    #: The names the certificate must cover: the webhook Service's DNS names (or an IP for a URL).
    names: tuple[str, ...]
    #: Kind and name of each webhook configuration whose `caBundle` the operator keeps current.
    configurations: tuple[tuple[str, str], ...]
    certfile: str
    keyfile: str
    cafile: str
    #: Seconds between checks (another replica's renewal, expiry).
    interval: float = 60.0


async def sync(client: kube.Kube, tls: Tls, now: datetime.datetime) -> certificates.Material:
    """One round: the Secret holds a good certificate, the files and the configurations match it."""
    material = await _stored_or_renewed(client, tls, now)
    _write_files(tls, material, now)
    bundle = base64.b64encode(material.bundle(now)).decode("ascii")
    for kind, name in tls.configurations:
        await _trust(client, kind, name, bundle)
    return material


async def _stored_or_renewed(client: kube.Kube, tls: Tls, now: datetime.datetime) -> certificates.Material:
    for _ in range(3):  # a concurrent renewal by another replica: read again and adopt it
        secret = await client.get("Secret", tls.namespace, tls.secret)
        current = certificates.from_secret((secret or {}).get("data"))
        renewed = certificates.renewal(current, list(tls.names), now)
        if renewed is None and current is not None:
            return current
        assert renewed is not None
        try:
            await _store(client, tls, secret, renewed)
        except kube.ApiError as exc:
            if exc.status in (409, 422):
                continue
            raise
        _log.info(
            "issued the webhook certificate for %s into Secret %s/%s",
            ", ".join(tls.names),
            tls.namespace,
            tls.secret,
        )
        return renewed
    raise kube.ApiError(409, "Conflict", f"Secret {tls.namespace}/{tls.secret} keeps changing under us")


async def _store(
    client: kube.Kube, tls: Tls, secret: dict[str, Any] | None, material: certificates.Material
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": tls.secret, "namespace": tls.namespace},
        "type": "Opaque",
        "data": material.secret_data(),
    }
    if secret is None:
        try:
            await client.create(body)
        except kube.ApiError as exc:
            if exc.status == 403:
                raise SecretMissing(
                    f"the webhook certificate's Secret {tls.namespace}/{tls.secret} does not exist and this "
                    f"operator may not create it ({exc}): recreate it with `helm upgrade` (the chart creates "
                    "it empty and the operator fills it in within a minute); until then replicas started "
                    "from now on have no certificate and stay unready"
                ) from exc
            raise
        return
    kept = secret["metadata"]
    body["metadata"].update({k: kept[k] for k in ("resourceVersion", "labels", "annotations") if k in kept})
    body["type"] = secret.get("type", "Opaque")
    await client.replace(body)


def _write_files(tls: Tls, material: certificates.Material, now: datetime.datetime) -> None:
    for path, content in (
        (tls.keyfile, material.key),
        (tls.certfile, material.cert),
        (tls.cafile, material.bundle(now)),
    ):
        target = pathlib.Path(path)
        if target.exists() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as temporary:
            temporary.write(content)
        os.chmod(temporary.name, 0o600)
        os.replace(temporary.name, target)


async def _trust(client: kube.Kube, kind: str, name: str, bundle: str) -> None:
    """Put `bundle` into every webhook of the configuration; another replica changing it meanwhile (the
    resourceVersion test fails: 422) means reading it again."""
    for _ in range(3):
        config = await client.get(kind, "", name)
        if config is None:
            _log.warning("%s %s does not exist: nothing to put the webhook CA into", kind, name)
            return
        operations: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": config["metadata"]["resourceVersion"],
            }
        ]
        for index, webhook in enumerate(config.get("webhooks") or []):
            if (webhook.get("clientConfig") or {}).get("caBundle") != bundle:
                path = f"/webhooks/{index}/clientConfig/caBundle"
                operations.append({"op": "add", "path": path, "value": bundle})
        if len(operations) == 1:
            return
        try:
            await client.json_patch(kind, "", name, operations)
        except kube.ApiError as exc:
            if exc.status in (409, 422):
                continue
            raise
        _log.info("%s %s now trusts the webhook CA", kind, name)
        return
    raise kube.ApiError(409, "Conflict", f"{kind} {name} keeps changing under us")
