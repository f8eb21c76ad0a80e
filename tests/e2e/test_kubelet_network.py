"""The test kubelet's loopback network: two kubelets alive at once (two suites run side by side) never
share a /16, since their pods bind the same fixed ports on their addresses."""

from __future__ import annotations

import contextlib
import ipaddress
import socket

import pytest

from tests.support.kubelet import kubelet


def test_kubelets_alive_at_once_each_claim_their_own_network() -> None:
    with contextlib.ExitStack() as claims:
        networks = []
        for _ in range(40):
            network, claim = kubelet._claim_network()
            claims.callback(claim.close)
            networks.append(network)
        assert len(set(networks)) == 40


def test_a_network_another_kubelet_claimed_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, free = 200, 201
    with socket.socket() as other:  # the other kubelet's claim on 127.200.0.0/16
        other.bind((f"127.{taken}.0.1", kubelet.CLAIM_PORT))
        monkeypatch.setattr(kubelet.random, "sample", lambda *_, **__: [taken, free])
        network, claim = kubelet._claim_network()
        with claim:
            assert network == ipaddress.IPv4Network(f"127.{free}.0.0/16")
        monkeypatch.setattr(kubelet.random, "sample", lambda *_, **__: [taken])
        with pytest.raises(RuntimeError, match="every loopback /16"):
            kubelet._claim_network()
