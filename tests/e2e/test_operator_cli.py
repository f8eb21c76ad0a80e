"""`otlp-operator run` as the Helm chart runs it: a separate process with its probes and the validating
webhook (both on port 0: the process reports the ports it got), reconciling a pipeline applied with
kubectl, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from otlp_operator.edge import cli

from tests.support.operator_harness import (
    EXAMPLES,
    IMAGE,
    NAMESPACE,
    WEBHOOK_CONFIG,
    Cluster,
    apply_yaml,
    example,
    webhook_for_tests,
)

PROBES = re.compile(r"probes at http://127\.0\.0\.1:(\d+)/healthz")
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def command(tmp_path: pathlib.Path) -> list[str]:
    hook = webhook_for_tests(tmp_path)
    return [
        str(pathlib.Path(sys.executable).parent / "otlp-operator"),
        "run",
        "--namespace",
        NAMESPACE,
        "--health-addr",
        "127.0.0.1",
        "--health-port",
        "0",
        "--agent-image",
        IMAGE,
        "--webhook-port",
        str(hook.port),
        "--webhook-addr",
        hook.addr,
        "--webhook-host",
        str(hook.host),
        "--webhook-cert",
        str(hook.certfile),
        "--webhook-key",
        str(hook.keyfile),
        "--webhook-ca",
        str(hook.cafile),
        "--webhook-managed",
        WEBHOOK_CONFIG,
    ]


def test_otlp_operator_run_serves_liveness_validates_reconciles_and_stops_on_sigterm(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    log = (tmp_path / "operator.log").open("w")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    process = subprocess.Popen(command(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cluster.wait_for_webhook()
        cluster.kubectl("apply", "-f", str(EXAMPLES / "gateway.yaml"))
        cluster.wait_for(lambda: cluster.status("gateway").get("configHash"), what="status")
        assert (
            cluster.get("deployments", "gateway-agent")["spec"]["template"]["spec"]["containers"][0][  # type: ignore[index]
                "image"
            ]
            == IMAGE
        )
        reported = PROBES.search((tmp_path / "operator.log").read_text())
        assert reported, "the operator logs where its probes listen"
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{reported.group(1)}{path}", timeout=5) as probe:
                assert probe.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{reported.group(1)}/metrics", timeout=5) as scraped:
            assert b"otlp_operator_reconciles_total " in scraped.read(), "metrics on the probe port"

        invalid = example("gateway.yaml")
        invalid["spec"]["receivers"]["otlp"]["grpc"]["port"] = 8888  # the metrics port
        rejected = apply_yaml(cluster, invalid, check=False)
        assert rejected.returncode != 0
        assert "spec.telemetry.port: port 8888 is already used by receivers.otlp.grpc.port" in rejected.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    output = (tmp_path / "operator.log").read_text()
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON (--log-format's default)
    assert all(RFC3339_MS_UTC.match(line["time"]) for line in lines)
    assert any(line["message"].startswith("probes at") for line in lines)


def test_run_refuses_a_webhook_without_a_certificate_and_a_missing_scope(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "--namespace", NAMESPACE, "--webhook-port", "9443"]) == 2
    assert "--webhook-port needs --webhook-cert and --webhook-key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--health-port", "0"])
    assert exited.value.code == 2
    assert "one of the arguments --namespace/-n --all-namespaces/-A is required" in capsys.readouterr().err
