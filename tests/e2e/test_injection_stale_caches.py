"""The pod webhook's caches after their first list: a watch that keeps failing turns the replica unready,
naming the watch, so the webhook Service stops sending it reviews it would answer from a frozen cache; it
is ready again once the watch works."""

from __future__ import annotations

import pathlib
import urllib.error
import urllib.request

import pytest
from otlp_operator.reconcile import informer

from tests.support.operator_harness import (
    Cluster,
    RunningOperator,
    config_for_tests,
    operator_running,
    webhook_for_tests,
)

NAMESPACES = r"^/api/v1/namespaces(\?watch=1&.*)?$"  # the informer's list and watch (not kopf's watch=true)


def readyz(operator: RunningOperator) -> tuple[int, str]:
    url = f"http://127.0.0.1:{operator.ports.health_ports[-1]}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return int(refused.code), refused.read().decode()


def test_a_watch_failing_longer_than_the_bound_makes_the_replica_unready(
    cluster: Cluster, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cluster.emulator is not None, "needs the emulator's fault injection"
    # The server ends each watch after a second (a real one does after minutes), so the next one is opened
    # soon; and the bound is shortened from 30 s so the test does not wait that long.
    monkeypatch.setattr(informer, "WATCH_TIMEOUT", 1)
    monkeypatch.setattr(informer, "STALE_AFTER", 2.0)
    config = config_for_tests(webhook=webhook_for_tests(tmp_path), injection=True)
    with operator_running(config) as operator:
        cluster.wait_for(lambda: operator.probe("/readyz") == 200, timeout=60, what="ready")

        cluster.emulator.fail_next("GET", NAMESPACES, status=503, times=1_000_000, message="etcd is down")

        def unready() -> str | None:
            status, text = readyz(operator)
            return text if status == 503 else None

        text = cluster.wait_for(
            unready, timeout=60, what="unready once the watch has failed for longer than the bound"
        )
        assert text.startswith(
            "waiting for: the pod webhook's watches, failing: /api/v1/namespaces (failing for "
        ), text
        assert "etcd is down" in text and "otlppipelines" not in text, text

        cluster.emulator.clear_faults()
        cluster.wait_for(lambda: operator.probe("/readyz") == 200, timeout=60, what="ready again")
