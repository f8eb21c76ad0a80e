"""The operator's webhook certificate Secret deleted under the chart's RBAC (get/update only, no create):
the operator's create is refused (403), it logs one error telling the user to recreate the Secret with
`helm upgrade`, keeps trying quietly, and fills the Secret in once it is back."""

from __future__ import annotations

import asyncio
import logging
import pathlib

import pytest
from otlp_operator.edge import handlers
from otlp_operator.reconcile import certificates, webhook_tls
from otlp_operator.reconcile import kube as kube_api

from tests.support.kube_emulator import KubeEmulator
from tests.support.waiting import eventually

NAMESPACE = "otlp-system"
SECRETS = rf"/namespaces/{NAMESPACE}/secrets$"


def operator_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The operator's own errors: not, say, asyncio's "Task was destroyed" for a task an earlier test left,
    which the garbage collector may report at any moment of this one."""
    return [r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("otlp_operator")]


async def test_a_deleted_secret_the_operator_may_not_create_is_reported_once(
    kube: KubeEmulator, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kube.fail_next("POST", SECRETS, 403, times=1000, message='secrets is forbidden: cannot "create"')
    tls = webhook_tls.Tls(
        namespace=NAMESPACE,
        secret="hooks-tls",
        names=("hooks.otlp-system.svc",),
        configurations=(),
        certfile=str(tmp_path / "tls.crt"),
        keyfile=str(tmp_path / "tls.key"),
        cafile=str(tmp_path / "ca.crt"),
    )
    client = kube_api.Kube.connect()
    loop = asyncio.create_task(handlers.tls_loop(client, tls, retry_delay=0.05))
    try:
        await eventually(
            lambda: sum(r.method == "POST" and "/secrets" in r.path for r in kube.requests) >= 5,
            what="the create tried again and again",
        )
        assert [r.getMessage() for r in operator_errors(caplog)] == [
            f"the webhook certificate's Secret {NAMESPACE}/hooks-tls does not exist and this operator may "
            'not create it (403 Forbidden: secrets is forbidden: cannot "create"): recreate it with `helm '
            "upgrade` (the chart creates it empty and the operator fills it in within a minute); until "
            "then replicas started from now on have no certificate and stay unready"
        ]
        assert not (tmp_path / "tls.crt").exists()

        await kube.create(  # what `helm upgrade` does: the chart's empty Secret
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hooks-tls", "namespace": NAMESPACE}}
        )

        def filled() -> bool:
            stored = kube.get("secrets", "hooks-tls", NAMESPACE) or {}
            return certificates.from_secret(stored.get("data")) is not None

        await eventually(filled, what="the recreated Secret filled in")
        await eventually(lambda: (tmp_path / "tls.crt").exists(), what="the certificate served")
        assert len(operator_errors(caplog)) == 1
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        client.close()
