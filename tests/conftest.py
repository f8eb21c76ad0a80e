"""Fixtures every tier may use: a recording OTLP backend and a port where nothing listens.

Helpers that are not fixtures live in tests/support/ (network.py for ports and listeners).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.network import RefusingPort
from tests.support.otlp_backend import OtlpBackend


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    """A recording, fault-injecting OTLP backend (gRPC and HTTP) on ports the OS picked."""
    with OtlpBackend() as running:
        yield running


@pytest.fixture
def refusing_port() -> Iterator[RefusingPort]:
    """A loopback port where nothing listens (connections are refused), held for the test's life."""
    with RefusingPort() as port:
        yield port
