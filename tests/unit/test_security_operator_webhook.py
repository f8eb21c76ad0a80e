"""The operator's admission webhook speaks TLS only: the command line refuses a port without a certificate
and key (naming a missing file), and the server built from the operator's settings answers HTTPS, drops
plaintext HTTP, and answers a malformed AdmissionReview 400 without calling any handler.

The server (`webhook_server.WebhookServer`, configured by `settings.kopf_settings`) binds port 0 of the
loopback and reports the port it got; a trustme CA signs its certificate.
"""

from __future__ import annotations

import logging
import pathlib
import ssl
from typing import Any

import aiohttp
import pytest
import trustme
from otlp_operator.edge import cli, settings, webhook_server

REQUEST = {
    "uid": "u-1",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "operation": "CREATE",
    "userInfo": {"username": "tester"},
    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
}
REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": REQUEST}


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


def test_a_missing_certificate_file_is_named(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tls.key").write_text("key", encoding="utf-8")
    missing = tmp_path / "nowhere" / "tls.crt"
    flags = ["--webhook-cert", str(missing), "--webhook-key", str(tmp_path / "tls.key")]
    assert cli.main(["run", "--namespace", "shop", "--webhook-port", "9443", *flags]) == cli.EXIT_INVALID
    assert f"--webhook-cert {missing}: no such file" in capsys.readouterr().err


def test_injection_without_a_webhook_port_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--namespace", "shop", "--inject-sidecars"]) == cli.EXIT_INVALID
    assert "--inject-sidecars serves the pod webhook, which needs --webhook-port" in capsys.readouterr().err


def webhook_files(tmp_path: pathlib.Path) -> tuple[settings.Webhook, pathlib.Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    hook = settings.Webhook(
        port=0,
        certfile=str(tmp_path / "tls.crt"),
        keyfile=str(tmp_path / "tls.key"),
        addr="127.0.0.1",
        host="127.0.0.1",
    )
    return hook, tmp_path / "ca.crt"


async def answer(request: Any, **_: Any) -> dict[str, Any]:
    """A handler that, like kopf's, reads the review's request and resource without checking them."""
    assert request["request"]["resource"]["resource"] == "pods"
    return {**REVIEW, "response": {"uid": request["request"]["uid"], "allowed": True}}


async def test_the_webhook_server_answers_https_and_drops_plain_http(tmp_path: pathlib.Path) -> None:
    hook, ca_file = webhook_files(tmp_path)
    server = settings.kopf_settings(settings.OperatorConfig(agent_image="x", webhook=hook)).admission.server
    assert isinstance(server, webhook_server.WebhookServer)
    serving = server(answer)
    client_config = await serving.__anext__()  # listening once the first client config is yielded
    try:
        port = server.bound_port
        assert port and client_config["url"] == f"https://127.0.0.1:{port}"
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"http://127.0.0.1:{port}/validate", json=REVIEW) as plain:
                    await plain.read()
            trusted = ssl.create_default_context(cafile=str(ca_file))
            async with session.post(f"https://127.0.0.1:{port}/validate", json=REVIEW, ssl=trusted) as tls:
                assert tls.status == 200
                assert (await tls.json())["response"] == {"uid": "u-1", "allowed": True}
    finally:
        await serving.aclose()


MALFORMED = {
    "empty": ({}, "request is missing"),
    "no-request": ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request is missing"),
    "no-resource": (
        {**REVIEW, "request": {k: v for k, v in REQUEST.items() if k != "resource"}},
        "request.resource is missing",
    ),
    "no-object": (
        {**REVIEW, "request": {k: v for k, v in REQUEST.items() if k != "object"}},
        "request.object and request.oldObject are both missing",
    ),
    "a-list": ([REVIEW], "the body is not a JSON object"),
}


async def test_malformed_reviews_are_answered_400_with_what_they_lack(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook, ca_file = webhook_files(tmp_path)
    server = settings.kopf_settings(settings.OperatorConfig(agent_image="x", webhook=hook)).admission.server
    assert isinstance(server, webhook_server.WebhookServer)
    serving = server(answer)
    await serving.__anext__()
    trusted = ssl.create_default_context(cafile=str(ca_file))
    url = f"https://127.0.0.1:{server.bound_port}/inject"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for body, why in MALFORMED.values():
                async with session.post(url, json=body, ssl=trusted) as refused:
                    assert (refused.status, await refused.text()) == (
                        400,
                        f"malformed AdmissionReview: {why}\n",
                    )
            async with session.post(url, data=b"{not json", ssl=trusted) as garbage:
                assert garbage.status == 400
            async with session.post(url, json=REVIEW, ssl=trusted) as fine:  # and the next one is served
                assert fine.status == 200
    finally:
        await serving.aclose()
    # (Not asyncio's records: the garbage collector may report a task an earlier test left at any moment.)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not [r for r in errors if r.name != "asyncio"]
