"""Secret files: where they are mounted, reloading on change, keeping the last good value, and errors that
name the file but never its content; plus validation of the TLS and secret-header settings."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from otlp_agent.api import rules, secret_mounts
from otlp_agent.api.problems import SpecError
from otlp_agent.security import secret_files

from tests.support.secret_files import SecretFiles

GRPC = {"name": "backend", "endpoint": "collector:4317"}


@pytest.fixture
def files(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> SecretFiles:
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path))
    return SecretFiles(tmp_path)


def test_secrets_are_found_under_the_mount_directory_the_operator_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(secret_mounts.ENV_DIR, raising=False)
    assert secret_mounts.path_of("api", "key") == pathlib.Path("/var/run/secrets/otlp-agent/api/key")
    monkeypatch.setenv(secret_mounts.ENV_DIR, "/mnt/s")
    assert secret_mounts.path_of("api", "key") == pathlib.Path("/mnt/s/api/key")


def test_a_changed_file_is_rebuilt_at_the_next_poll_and_only_then(
    files: SecretFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.write("s", k=b"one")
    value = secret_files.Reloadable("thing", [secret_mounts.path_of("s", "k")], lambda c: c[0].decode())
    assert (value.get(), value.version) == ("one", 0)
    files.write("s", k=b"two")
    monkeypatch.setattr(secret_files, "POLL_INTERVAL", 3600.0)
    assert value.get() == "one", "no look at the files before the poll interval"
    assert value.poll(force=True)
    assert (value.get(), value.version) == ("two", 1)
    assert not value.poll(force=True), "unchanged files are not rebuilt"


def test_a_rewrite_with_the_same_content_is_not_a_change(files: SecretFiles) -> None:
    files.write("s", k=b"same")
    builds: list[bytes] = []
    value = secret_files.Reloadable("thing", [secret_mounts.path_of("s", "k")], lambda c: builds.append(c[0]))
    files.write("s", k=b"same")
    assert not value.poll(force=True)
    assert builds == [b"same"]


def test_an_unusable_update_keeps_the_last_good_value_and_is_retried(files: SecretFiles) -> None:
    files.write("s", k=b"10")
    value = secret_files.Reloadable("number", [secret_mounts.path_of("s", "k")], lambda c: int(c[0]))
    files.write("s", k=b"not a number")
    assert not value.poll(force=True)
    assert value.get() == 10
    files.write("s", k=b"11")
    assert value.poll(force=True)
    assert value.get() == 11


def test_a_missing_or_bad_secret_at_start_names_the_file_but_not_its_content(files: SecretFiles) -> None:
    with pytest.raises(secret_files.SecretError, match=r"s/absent"):
        secret_files.Reloadable("thing", [secret_mounts.path_of("s", "absent")], lambda c: c)
    files.write("s", k=b"hunter2-secret")

    def refuse(contents: Any) -> None:
        raise ValueError("not usable")

    with pytest.raises(secret_files.SecretError) as caught:
        secret_files.Reloadable("thing", [secret_mounts.path_of("s", "k")], refuse)
    assert "s/k" in str(caught.value) and "hunter2" not in str(caught.value)


def test_an_oversized_secret_file_is_refused(files: SecretFiles) -> None:
    files.write("s", k=b"x" * (secret_files.MAX_BYTES + 1))
    with pytest.raises(secret_files.SecretError, match="larger than"):
        secret_files.read(secret_mounts.path_of("s", "k"))


def problems(exporter: dict[str, Any]) -> list[str]:
    try:
        rules.validate_spec({"exporters": [exporter]})
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_grpc_exporters_cannot_skip_server_verification() -> None:
    assert problems({**GRPC, "tls": {"insecureSkipVerify": True}}) == [
        "spec.exporters[0].tls.insecureSkipVerify: gRPC exporters cannot skip server verification (grpcio "
        "has no such option): give the server's CA with caSecret or caFile, or use protocol http/protobuf"
    ]
    http = {"name": "b", "endpoint": "https://c:4318", "protocol": "http/protobuf"}
    assert problems({**http, "tls": {"insecureSkipVerify": True}}) == []


def test_tls_and_secret_headers_from_secrets_are_accepted_and_conflicts_are_refused() -> None:
    ref = {"name": "key", "key": "value"}
    ok = {
        **GRPC,
        "tls": {"caSecret": {"name": "ca", "key": "ca.crt"}, "certSecret": "client"},
        "headersFrom": [{"name": "X-Api-Key", "secretKeyRef": ref}],
    }
    assert problems(ok) == []
    conflicting = {
        **GRPC,
        "headers": {"x-api-key": "literal"},
        "tls": {"caSecret": {"name": "ca", "key": "ca.crt"}, "caFile": "/etc/ca.pem"},
        "headersFrom": [
            {"name": "X-Api-Key", "secretKeyRef": ref},
            {"name": "Content-Type", "secretKeyRef": ref},
            {"name": "content-type", "secretKeyRef": ref},
        ],
    }
    assert [p.split(":")[0] for p in problems(conflicting)] == [
        "spec.exporters[0].tls.caFile",
        "spec.exporters[0].headersFrom[0].name",
        "spec.exporters[0].headersFrom[1].name",
        "spec.exporters[0].headersFrom[2].name",
        "spec.exporters[0].headersFrom",
    ]


def test_receiver_tls_auth_and_read_timeout_are_accepted() -> None:
    auth = {"bearerTokenSecret": {"name": "token", "key": "token"}}
    tls = {"certSecret": "server", "clientCaSecret": {"name": "clients", "key": "ca.crt"}}
    parsed = rules.validate_spec(
        {
            "receivers": {
                "otlp": {"grpc": {"tls": tls, "auth": auth}, "http": {"tls": tls, "readTimeout": "2s"}}
            },
            "exporters": [GRPC],
        }
    )
    assert parsed.receivers.otlp.http.read_timeout == 2.0
    assert parsed.receivers.otlp.grpc.tls is not None and parsed.receivers.otlp.grpc.auth is not None
