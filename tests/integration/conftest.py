"""Fixtures shared by the integration tests: Secrets mounted as the kubelet does, and a test CA."""

from __future__ import annotations

import pathlib

import pytest
import trustme
from otlp_agent.api import secret_mounts
from otlp_agent.security import secret_files as secret_reading

from tests.support.secret_files import SecretFiles


@pytest.fixture
def secret_files(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> SecretFiles:
    """The agent's secrets directory (OTLP_AGENT_SECRETS_DIR), looked at every 50 ms instead of every
    second so rotation tests do not wait."""
    monkeypatch.setenv(secret_mounts.ENV_DIR, str(tmp_path / "secrets"))
    monkeypatch.setattr(secret_reading, "POLL_INTERVAL", 0.05)
    return SecretFiles(tmp_path / "secrets")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority for the module's server and client certificates."""
    return trustme.CA()
