"""The operator's end-to-end harness: a cluster with the CRD, the operator in KopfRunner, examples.

The tests run the real operator (`handlers.build_registry` in `kopf.testing.KopfRunner`) and drive it
with the real `kubectl`. They run against the Kubernetes API emulator (tests/support/kube_emulator) by
default, or against a real cluster when `OTLP_E2E_KUBECONFIG` names a kubeconfig file:

- the OTLPPipeline CRD is applied from crds/ (kubectl apply, idempotent) and the namespace
  `observability` (the examples' namespace) is created if missing; pipelines are deleted afterwards;
- the webhook binds port 0 (any free port) and is advertised, with the port it got, as
  `https://$OTLP_E2E_WEBHOOK_HOST:<port>` (default 127.0.0.1: only a cluster on this machine's network can
  call it), with a test CA; its kopf-managed ValidatingWebhookConfiguration is deleted afterwards;
- the probes (`/healthz`, `/readyz`) bind port 0 too; `RunningOperator.probe` finds the port in the
  operator's log line (`PortLog`), as a user would;
- agent pods become ready only if the cluster can pull the agent image (`OTLP_OPERATOR_AGENT_IMAGE`);
  on the emulator the tests play the workload controller (`Cluster.workload_ready`);
- tests that inject API faults need the emulator and say so (`Cluster.emulator`).

Waiting is bounded and event-driven on the emulator (re-checked on every stored change); against a
real cluster conditions are polled every 0.2 s until their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import kopf
import kopf.testing
import kubernetes
import pytest
import trustme
import yaml
from otlp_operator.edge import handlers, settings

from tests.support.kube_emulator import ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl
from tools import crd

T = TypeVar("T")
ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMESPACE = "observability"
IMAGE = os.environ.get("OTLP_OPERATOR_AGENT_IMAGE", "registry.test/otlp-agent:e2e")
WEBHOOK_CONFIG = "otlp-operator-e2e.telemetry.otlp-operator.io"
REAL_CLUSTER = os.environ.get("OTLP_E2E_KUBECONFIG")


@dataclasses.dataclass
class Cluster:
    """The API server under test (emulator or real) and kubectl bound to it."""

    kubeconfig: pathlib.Path
    kubectl: Kubectl
    emulator: ThreadedKubeEmulator | None

    def get(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        if self.emulator is not None:
            return self.emulator.get(resource, name, namespace)
        scope = ["-n", namespace] if namespace else []  # "" for cluster-scoped resources
        done = self.kubectl("get", resource, name, *scope, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def list(self, resource: str, selector: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        """Objects of `resource` whose labels include every `key=value` of `selector`."""
        if self.emulator is None:
            return list(self.kubectl.json("get", resource, "-n", namespace, "-l", selector)["items"])
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [
            obj
            for obj in self.emulator.list(resource, namespace)
            if wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("otlppipelines", name) or {}).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == kind), {})

    def events(self, name: str) -> list[dict[str, Any]]:
        found = self.kubectl.json("get", "events", "-n", NAMESPACE)["items"]
        return [e for e in found if e.get("involvedObject", {}).get("name") == name]

    def workload_ready(self, resource: str, name: str) -> None:
        """Emulator: report the workload rolled out, as its controller would. Real cluster: it does."""
        if self.emulator is not None:
            self.emulator.set_workload_ready(resource, name, NAMESPACE)

    def wait_for_webhook(self, timeout: float = 30.0) -> None:
        """Until the operator has registered its validating webhook (from then on every apply is reviewed)."""
        self.wait_for(
            lambda: self.get("validatingwebhookconfigurations", WEBHOOK_CONFIG, ""),
            timeout=timeout,
            what="the operator to register its validating webhook",
        )

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
        """Return `predicate()` once truthy; AssertionError naming `what` after `timeout` seconds."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while True:
                marker = self._change_marker()
                result = predicate()
                if result:
                    return result
                if deadline.is_set():
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._await_change(marker, deadline)
        finally:
            timer.cancel()

    def _change_marker(self) -> Any:
        if self.emulator is None:
            return None
        return self.emulator.call(lambda: self.emulator.emulator.store.changed)  # type: ignore[union-attr]

    def _await_change(self, marker: Any, deadline: threading.Event) -> None:
        if self.emulator is None:
            deadline.wait(0.2)  # a real cluster is polled
            return

        async def changed() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(marker.wait(), 0.5)

        self.emulator.run(changed())


def _point_clients_at(monkeypatch: pytest.MonkeyPatch, path: pathlib.Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def _install_crd(cluster: Cluster) -> None:
    if cluster.emulator is None:
        cluster.kubectl("apply", "-f", str(ROOT / "crds" / "otlppipelines.yaml"))
        cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        return
    cluster.emulator.create(crd.build_crd())
    cluster.emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


@contextlib.contextmanager
def cluster_for_tests(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[Cluster]:
    """The emulator (or the real cluster named by OTLP_E2E_KUBECONFIG) with the CRD installed; the e2e
    `cluster` fixture."""
    if REAL_CLUSTER:
        path = pathlib.Path(REAL_CLUSTER)
        _point_clients_at(monkeypatch, path)
        real = Cluster(path, Kubectl(path, tmp_path / "kubectl-cache"), None)
        _install_crd(real)
        yield real
        real.kubectl("delete", "otlppipelines", "--all", "-n", NAMESPACE, "--wait=false", check=False)
        real.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG, check=False)
        return
    with ThreadedKubeEmulator() as emulator:
        _point_clients_at(monkeypatch, emulator.kubeconfig_path)
        emulated = Cluster(
            emulator.kubeconfig_path, Kubectl(emulator.kubeconfig_path, tmp_path / "kc"), emulator
        )
        _install_crd(emulated)
        yield emulated


def webhook_for_tests(tmp_path: pathlib.Path) -> settings.Webhook:
    """A managed webhook with a fresh test CA, reachable at the advertised host."""
    host = os.environ.get("OTLP_E2E_WEBHOOK_HOST", "127.0.0.1")
    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    return settings.Webhook(
        port=0,  # the server binds any free port and advertises the one it got
        certfile=str(tmp_path / "tls.crt"),
        keyfile=str(tmp_path / "tls.key"),
        cafile=str(tmp_path / "ca.crt"),
        addr="127.0.0.1" if REAL_CLUSTER is None else "0.0.0.0",
        host=host,
        managed=WEBHOOK_CONFIG,
    )


class PortLog(logging.Handler):
    """Collects the ports the operator's servers report in their start-up log lines."""

    PATTERN = re.compile(r"probes at http://[^:]+:(\d+)/healthz")

    def __init__(self) -> None:
        super().__init__()
        self.health_ports: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PATTERN.search(record.getMessage())
        if found:
            self.health_ports.append(int(found.group(1)))


@dataclasses.dataclass
class RunningOperator:
    """An operator started by `operator_running`: its kopf runner, settings and reported ports."""

    runner: kopf.testing.KopfRunner
    settings: kopf.OperatorSettings
    ports: PortLog

    @property
    def webhook_port(self) -> int | None:
        server = self.settings.admission.server
        return getattr(server, "bound_port", None)

    def probe(self, path: str) -> int:
        """The status code of `/healthz` or `/readyz` (0 while the probes are not listening yet)."""
        if not self.ports.health_ports:
            return 0
        url = f"http://127.0.0.1:{self.ports.health_ports[-1]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return int(refused.code)


@contextlib.contextmanager
def operator_running(
    config: settings.OperatorConfig, args: tuple[str, ...] = ("--standalone", "--namespace", NAMESPACE)
) -> Iterator[RunningOperator]:
    """The real operator (its registry and kopf settings) watching the examples' namespace, its probes on
    a free port of 127.0.0.1 (unless `config.health` says otherwise)."""
    if config.health is None:
        config = dataclasses.replace(config, health=("127.0.0.1", 0))
    kopf_settings = settings.kopf_settings(config)
    kopf_settings.watching.server_timeout = 10  # shut down promptly at the end of a test
    registry = handlers.build_registry(config)
    ports = PortLog()
    logger = logging.getLogger("otlp_operator.edge.health")
    logger.addHandler(ports)
    try:
        with kopf.testing.KopfRunner(
            ["run", *args, "--verbose"], registry=registry, settings=kopf_settings, timeout=30
        ) as runner:
            yield RunningOperator(runner, kopf_settings, ports)
    finally:
        logger.removeHandler(ports)
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def config_for_tests(**overrides: Any) -> settings.OperatorConfig:
    base: dict[str, Any] = {"agent_image": IMAGE, "drift_interval": 60.0, "retry_delay": 0.2}
    return settings.OperatorConfig(**{**base, **overrides})


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def apply_yaml(cluster: Cluster, document: dict[str, Any], check: bool = True) -> Any:
    return cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=check)
