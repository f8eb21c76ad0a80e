"""A receiver's bearer tokens say who a client is: the token without tenant, or one per tenant; a wrong,
missing or shared token is refused without saying more, and a rotated token is honoured at once."""

from __future__ import annotations

import pathlib

import pytest
from otlp_agent.api import secret_mounts, spec
from otlp_agent.otlp import errors
from otlp_agent.security import auth
from otlp_agent.security import secret_files as secret_reading

from tests.support.secret_files import SecretFiles


@pytest.fixture
def secrets(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> SecretFiles:
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path / "secrets"))
    monkeypatch.setattr(secret_reading, "POLL_INTERVAL", 0.0)
    return SecretFiles(tmp_path / "secrets")


def tokens(**auth_fields: object) -> auth.BearerTokens:
    return auth.BearerTokens(spec.ReceiverAuth.model_validate(auth_fields), "test receiver")


def tenant(name: str) -> dict[str, object]:
    return {"name": name, "bearerTokenSecret": {"name": f"{name}-token", "key": "token"}}


def test_each_token_names_its_tenant_and_the_plain_token_none(secrets: SecretFiles) -> None:
    secrets.write("plain", token=b"p-token\n")
    secrets.write("ta-token", token=b"a-token")
    secrets.write("tb-token", token=b"b-token")
    check = tokens(bearerTokenSecret={"name": "plain", "key": "token"}, tenants=[tenant("ta"), tenant("tb")])
    assert check.authenticate("Bearer a-token") == auth.Identity("ta")
    assert check.authenticate("bearer  b-token ") == auth.Identity("tb")
    assert check.authenticate("Bearer p-token") == auth.Identity(None)


@pytest.mark.parametrize("header", [None, "", "Bearer nope", "Basic a-token", "a-token", "Bearer a-token2"])
def test_anything_else_is_refused_without_saying_more(secrets: SecretFiles, header: str | None) -> None:
    secrets.write("ta-token", token=b"a-token")
    refusal = tokens(tenants=[tenant("ta")]).authenticate(header)
    assert isinstance(refusal, errors.ReceiveError)
    assert (refusal.http_status, refusal.reason) == (401, "unauthenticated")
    assert "a-token" not in refusal.message and "ta" not in refusal.message.split()


def test_a_token_two_tenants_share_is_refused_rather_than_guessed(secrets: SecretFiles) -> None:
    secrets.write("ta-token", token=b"same")
    secrets.write("tb-token", token=b"same")
    assert isinstance(
        tokens(tenants=[tenant("ta"), tenant("tb")]).authenticate("Bearer same"), errors.ReceiveError
    )


def test_a_rotated_tenant_token_replaces_the_old_one(secrets: SecretFiles) -> None:
    secrets.write("ta-token", token=b"old")
    check = tokens(tenants=[tenant("ta")])
    assert check.authenticate("Bearer old") == auth.Identity("ta")
    secrets.write("ta-token", token=b"new")
    assert check.authenticate("Bearer new") == auth.Identity("ta")
    assert isinstance(check.authenticate("Bearer old"), errors.ReceiveError)
