"""The operator's admission webhook speaks TLS only: the command line refuses a port without a certificate
and key, and the server built from the operator's settings answers HTTPS and drops plaintext HTTP.

The server is kopf's, configured by `settings.kopf_settings`, on a free loopback port with a trustme CA.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
from typing import Any

import aiohttp
import pytest
import trustme
from otlp_operator.edge import cli, settings

REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u-1"}}


@pytest.mark.parametrize(
    "flags",
    [[], ["--webhook-cert", "tls.crt"], ["--webhook-key", "tls.key"]],
    ids=["neither", "cert-only", "key-only"],
)
def test_a_webhook_port_without_both_certificate_and_key_is_refused(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--namespace", "shop", "--webhook-port", "9443", *flags]) == cli.EXIT_INVALID
    assert "--webhook-port needs --webhook-cert and --webhook-key" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_files(tmp_path: pathlib.Path) -> tuple[settings.Webhook, pathlib.Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    hook = settings.Webhook(
        port=free_port(),
        certfile=str(tmp_path / "tls.crt"),
        keyfile=str(tmp_path / "tls.key"),
        addr="127.0.0.1",
        host="127.0.0.1",
    )
    return hook, tmp_path / "ca.crt"


async def answer(request: Any, **_: Any) -> dict[str, Any]:
    return {**REVIEW, "response": {"uid": request["request"]["uid"], "allowed": True}}


async def test_the_webhook_server_answers_https_and_drops_plain_http(tmp_path: pathlib.Path) -> None:
    hook, ca_file = webhook_files(tmp_path)
    server = settings.kopf_settings(settings.OperatorConfig(agent_image="x", webhook=hook)).admission.server
    assert server is not None
    serving = server(answer)
    client_config = await serving.__anext__()  # listening once the first client config is yielded
    try:
        assert client_config["url"] is not None and client_config["url"].startswith("https://")
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"http://127.0.0.1:{hook.port}/validate", json=REVIEW) as plain:
                    await plain.read()
            trusted = ssl.create_default_context(cafile=str(ca_file))
            async with session.post(
                f"https://127.0.0.1:{hook.port}/validate", json=REVIEW, ssl=trusted
            ) as tls:
                assert tls.status == 200
                assert (await tls.json())["response"] == {"uid": "u-1", "allowed": True}
    finally:
        await serving.aclose()
